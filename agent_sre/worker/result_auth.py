"""With AGENT_SRE_RESULT_KEY set, a function's result and a person's approval answer count only
when they are signed with that key.

`SignedResults` wraps the pipeline: a `io.homelab.agent-sre.lambda.result` whose `signature`
extension is missing or wrong is dead-lettered (`unsigned_result` / `forged_result`) before the
outcomes ever see it, so nobody who can merely publish to the broker (or POST to the worker) can
mark a remediation succeeded, or fail one to force an escalation; an `approval.granted` or
`.denied` likewise (`unsigned_answer` / `forged_answer`), so nobody can approve a risky action by
publishing. (`approval.expired`, the worker's own timer, can only make it escalate: not checked.)
Everything else goes on to the pipeline unchanged. The signature is agent_sre.schemas.signing's.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

from aio_pika.abc import AbstractIncomingMessage

from ..errors import InputError
from ..schemas.cloudevent import decode_event
from ..schemas.signing import SIGNATURE_EXTENSION, answer_status, verify
from ..schemas.events import APPROVAL_DENIED_TYPE, APPROVAL_GRANTED_TYPE, RESULT_TYPE
from ..schemas.verdict import Verdict
from .pipeline import Pipeline

log = logging.getLogger(__name__)


class Refusal(NamedTuple):
    reason: str  # the dead-letter reason
    error: str
    event_type: str


def refusal(body: bytes, headers: Any, content_type: str | None, key: bytes, max_bytes: int) -> Refusal | None:
    """Why a result or answer not signed with `key` is refused; None for anything else."""
    try:
        event = decode_event(body, headers, content_type=content_type, max_bytes=max_bytes)
    except InputError:
        return None  # the pipeline refuses it with its own reason
    data = event.data if isinstance(event.data, dict) else {}
    if event.type == RESULT_TYPE:
        what, status = "result", str(data.get("status", ""))
    elif event.type in (APPROVAL_GRANTED_TYPE, APPROVAL_DENIED_TYPE):
        what, status = "answer", answer_status(event.type == APPROVAL_GRANTED_TYPE)
    else:
        return None
    signature = event.attributes.get(SIGNATURE_EXTENSION)
    if not signature:
        return Refusal(f"unsigned_{what}", f"a {what} without a signature, while AGENT_SRE_RESULT_KEY is set",
                       event.type)
    if not verify(key, str(data.get("correlation_id", "")), status, event.data, signature):
        return Refusal(f"forged_{what}", f"a {what} whose signature does not match (another key, or altered)",
                       event.type)
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
        log.warning("message %s refused: %s", message.message_id, refused.error)
        return Verdict(type_label=refused.event_type, invalid=InputError(refused.reason, refused.error))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipeline, name)
