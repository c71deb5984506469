"""The audit record: one JSON line per alert, per outcome, or per unreadable message.

The worker writes it (`agent_sre.worker.audit.AuditLog`) and `fewshot` reads it back
(`agent_sre.retrieval.audit_examples`): both go through this one model, so a key one side uses is
a key the other side knows. A record with a key the model does not name is refused.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict


class Action(str, Enum):
    """What became of one alert: the `action` of its audit record (one record per alert)."""

    PUBLISHED = "published"
    OUTCOME = "outcome"  # what followed a remediation (agent_sre.worker.outcome_flow)
    RESULT_UNMATCHED = "result_unmatched"  # a function's result for no trigger awaiting one
    PROPOSED = "proposed"  # shadow mode: the proposal went out in place of the trigger
    APPROVAL_REQUESTED = "approval_requested"  # a human is asked; the trigger waits (approval_flow.py)
    APPROVAL_PENDING = "approval_pending"  # the alert again, while its request waits
    APPROVAL_DENIED = "approval_denied"  # denied: escalated instead
    APPROVAL_EXPIRED = "approval_expired"  # unanswered within AGENT_SRE_APPROVAL_TTL_S: escalated
    APPROVAL_WITHDRAWN = "approval_withdrawn"  # the alert resolved while its request waited
    APPROVAL_UNMATCHED = "approval_unmatched"  # an answer for no request waiting for one
    RESOLVED = "resolved"
    IGNORED = "ignored"
    NO_DECISION = "no_decision"
    ALERT_ERROR = "alert_error"  # handling this alert raised: it alone is dead-lettered with the message
    RETRY = "retry"  # the trigger (or the shared state) failed: the message is retried
    INVALID = "invalid"  # the message could not be read: dead-lettered (no alert)
    DUPLICATE = "duplicate"  # `agent_sre.worker.limits.Refusal`, each
    BUSY = "busy"  # another replica is publishing it: the message is looked at again
    SUPPRESSED_COOLDOWN = "suppressed:cooldown"
    SUPPRESSED_RATE_LIMIT = "suppressed:rate_limit"
    SUPPRESSED_STORM = "suppressed:storm"

    @classmethod
    def of(cls, refusal: Enum) -> Action:
        """The action of an alert refused by the limits (`agent_sre.worker.limits.Refusal`)."""
        if refusal.value in (cls.DUPLICATE.value, cls.BUSY.value):
            return cls(refusal.value)
        return cls(f"suppressed:{refusal.value}")


# Whose records wait for the message's settlement, so that the record says what became of it.
SETTLED_LATER = frozenset({Action.NO_DECISION, Action.ALERT_ERROR, Action.RETRY, Action.BUSY})


class Settlement(str, Enum):
    """What became of one input message: the consumer settles each exactly once. Its value is the
    `message` of the audit records that waited for it, and the `outcome` label of the events
    metric (a dead letter is counted under its reason instead)."""

    PROCESSED = "processed"  # acked, nothing more to do
    RETRY = "retry"  # a copy went to a delay queue, one attempt more
    BUSY = "busy"  # parked: another replica holds its alerts (no attempt counted)
    DEAD_LETTERED = "dead_lettered"
    REQUEUED = "requeued"  # settling failed: nacked, the broker delivers it again


class RemediationOutcome(str, Enum):
    """What followed one remediation (agent_sre.worker.outcomes)."""

    RESOLVED = "resolved"
    NOT_RESOLVED = "not_resolved"
    SUCCEEDED = "succeeded"  # the function's own result, as are the next two
    FAILED = "failed"
    SKIPPED = "skipped"


class AuditRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action
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
    message: Settlement | None = None  # dead_lettered, retry, busy or requeued
    dead_letter_reason: str | None = None
    attempt: int | None = None
    queue: str | None = None

    # An outcome (action `outcome`) or a function's result
    outcome: RemediationOutcome | None = None
    function: str | None = None
    attempts: int | None = None
    seconds_to_resolve: float | None = None
    status: RemediationOutcome | None = None  # succeeded, failed or skipped, from the function's result
    result_message: str | None = None
