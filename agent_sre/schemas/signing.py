"""HMAC-SHA256 over a function's result (and a person's approval answer), so the worker can tell
them from forgeries.

With AGENT_SRE_RESULT_KEY set on both sides, a function puts `signature` (a CloudEvents extension,
a bare header on the broker) on its `io.homelab.agent-sre.lambda.result`, and the worker refuses a
result without one or with a wrong one. Approval answers (`approval.granted` / `.denied`, from
`POST /approvals` and `agent-sre approvals`) are signed the same way, their status being
`granted` or `denied`. The MAC covers the correlation id, the status and the
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


def answer_status(approved: bool) -> str:
    return "granted" if approved else "denied"


def verify(key: bytes, correlation_id: str, status: str, data: Any, signature: str | None) -> bool:
    if not signature:
        return False
    return hmac.compare_digest(sign(key, correlation_id, status, data), signature)
