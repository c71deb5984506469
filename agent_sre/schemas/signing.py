"""HMAC-SHA256 over a function's result, so the worker can tell a function's result from a forgery.

With AGENT_SRE_RESULT_KEY set on both sides, a function puts `signature` (a CloudEvents extension,
a bare header on the broker) on its `io.homelab.agent-sre.lambda.result`, and the worker refuses a
result without one or with a wrong one. The MAC covers the correlation id, the status and the
event data in canonical JSON (keys sorted, no spaces: what `canonical` gives), so it holds whether
the event crossed the broker in binary mode or HTTP in structured mode.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

SIGNATURE_EXTENSION = "signature"
_SCHEME = "sha256="


def canonical(data: Any) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def sign(key: bytes, correlation_id: str, status: str, data: Any) -> str:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in (correlation_id.encode(), status.encode()):
        mac.update(len(part).to_bytes(4, "big") + part)  # length-prefixed: no two splits collide
    mac.update(canonical(data))
    return _SCHEME + mac.hexdigest()


def verify(key: bytes, correlation_id: str, status: str, data: Any, signature: str | None) -> bool:
    if not signature:
        return False
    return hmac.compare_digest(sign(key, correlation_id, status, data), signature)
