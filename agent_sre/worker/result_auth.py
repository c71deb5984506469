"""With AGENT_SRE_RESULT_KEY set, a function's result counts only when it is signed with that key.

`SignedResults` wraps the pipeline: a `io.homelab.agent-sre.lambda.result` whose `signature`
extension is missing or wrong is dead-lettered (`unsigned_result` / `forged_result`) before the
outcomes ever see it, so nobody who can merely publish to the broker (or POST to the worker) can
mark a remediation succeeded, or fail one to force an escalation. Everything else, and every
signed result, goes on to the pipeline unchanged. The signature is agent_sre.schemas.signing's.
"""

from __future__ import annotations

import logging
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from ..errors import InputError
from ..schemas.cloudevent import decode_event
from ..schemas.signing import SIGNATURE_EXTENSION, verify
from ..settings import RESULT_TYPE
from .consumer import Pipeline, Verdict

log = logging.getLogger(__name__)


def refusal(body: bytes, headers: Any, content_type: str | None, key: bytes, max_bytes: int) -> tuple[str, str] | None:
    """(dead-letter reason, error) for a result not signed with `key`; None for anything else."""
    try:
        event = decode_event(body, headers, content_type=content_type, max_bytes=max_bytes)
    except InputError:
        return None  # the pipeline refuses it with its own reason
    if event.type != RESULT_TYPE:
        return None
    data = event.data if isinstance(event.data, dict) else {}
    signature = event.attributes.get(SIGNATURE_EXTENSION)
    if not signature:
        return ("unsigned_result", "a lambda result without a signature, while AGENT_SRE_RESULT_KEY is set")
    if not verify(key, str(data.get("correlation_id", "")), str(data.get("status", "")), event.data, signature):
        return ("forged_result", "a lambda result whose signature does not match (another key, or altered)")
    return None


class SignedResults:
    """The pipeline, refusing unsigned and forged results first."""

    def __init__(self, pipeline: Pipeline, key: bytes) -> None:
        self.pipeline = pipeline
        self.key = key

    async def process(self, message: AbstractIncomingMessage) -> Verdict:
        refused = refusal(message.body, message.headers, message.content_type, self.key, self.pipeline.max_event_bytes)
        if refused is None:
            return await self.pipeline.process(message)
        log.warning("result refused: %s", refused[1], extra={"message_id": message.message_id})
        return Verdict(type_label=RESULT_TYPE, invalid=refused)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipeline, name)
