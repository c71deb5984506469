"""The audit record: one JSON line per alert, per outcome, or per unreadable message.

The worker writes it (`agent_sre.worker.audit.AuditLog`) and `fewshot` reads it back
(`agent_sre.retrieval.audit_examples`): both go through this one model, so a key one side uses is
a key the other side knows. A record with a key the model does not name is refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class AuditRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: str  # `agent_sre.worker.consumer.Action`, or `invalid`
    ts: datetime | None = None  # set when written
    audit: bool = True  # marks the line as an audit record among the logs on stdout

    # The alert (absent for an unreadable message or a function's result)
    event_id: str | None = None
    message_id: str | None = None  # the AMQP message, for an unreadable one
    correlation_id: str | None = None
    fingerprint: str | None = None
    alertname: str | None = None
    labels: dict[str, str] | None = None

    # The decision and what was done
    decision: dict[str, Any] | None = None  # `agent_sre.schemas.decision.Decision`, as JSON
    trigger_id: str | None = None  # the trigger (or proposal) published, or the one an outcome follows
    reason: str | None = None
    error: str | None = None
    storm_escalation: str | None = None  # the storm's escalate trigger, on the first alert refused for it
    by: str | None = None  # who answered an approval request

    # What became of the message, on records written at its settlement
    message: str | None = None  # dead_lettered, retry, busy or requeued
    dead_letter_reason: str | None = None
    attempt: int | None = None
    queue: str | None = None

    # An outcome (action `outcome`) or a function's result
    outcome: str | None = None  # `agent_sre.worker.outcomes.Outcome`
    function: str | None = None
    attempts: int | None = None
    seconds_to_resolve: float | None = None
    status: str | None = None  # succeeded, failed or skipped, from the function's result
    result_message: str | None = None
