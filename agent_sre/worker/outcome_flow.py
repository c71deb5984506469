"""What followed each remediation, told as audit records and metrics: the alert resolved, kept
firing, or its function reported (`agent_sre.worker.outcomes` holds the remediations). An alert
that keeps firing after its remediations, or whose function failed, is escalated."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from ..schemas.alert import Alert
from ..schemas.audit import Action, RemediationOutcome
from ..schemas.catalog import ESCALATE
from ..schemas.cloudevent import InboundEvent
from ..schemas.decision import Decision
from .audit import AuditTrail
from .metrics import Metrics
from .outcomes import LambdaResult, Outcomes, Remediation
from .triggers import Triggers


class OutcomeFlow:
    def __init__(self, outcomes: Outcomes, metrics: Metrics, trail: AuditTrail, triggers: Triggers,
                 max_attempts_per_alert: int) -> None:
        self.outcomes = outcomes
        self.metrics = metrics
        self.trail = trail
        self.triggers = triggers
        self.max_attempts_per_alert = max_attempts_per_alert

    async def result(self, event: InboundEvent, result: LambdaResult) -> None:
        """A function's result for the trigger it ran."""
        status = RemediationOutcome(result.status)
        if result.function == ESCALATE:
            remediation = await self.outcomes.escalation_reported(result.correlation_id)
        else:
            remediation = await self.outcomes.reported(result.correlation_id, failed=status is RemediationOutcome.FAILED)
        record = {"event_id": event.id, "correlation_id": result.correlation_id, "status": status,
                  "result_message": result.message}
        if remediation is None:
            self.trail.write({**record, "action": Action.RESULT_UNMATCHED})
            return
        self._write(remediation, status, **record)
        if status is RemediationOutcome.FAILED:  # a human must hear of it again (a failed escalate too)
            await self.triggers.unsilence(remediation.correlation_id)

    def awaiting(self, alert: Alert, function: str, trigger_id: str) -> Awaitable[object]:
        """A trigger was published: its result awaited; a remediation's outcome too. Await it
        (sent when called, with Redis)."""
        if function == ESCALATE:
            return self.outcomes.escalated(alert.correlation_id, trigger_id)
        return self.outcomes.triggered(alert.identity, alert.correlation_id, trigger_id, function)

    async def resolved(self, event: InboundEvent, alert: Alert) -> Remediation | None:
        """The alert resolved: its remediation, if one awaited that, recorded as `resolved`.
        A TransientError means its outcome would be lost: the message is retried."""
        remediation = await self.outcomes.resolved(alert.identity)
        if remediation is not None:
            self._followed(event, alert, remediation, RemediationOutcome.RESOLVED)
        return remediation

    async def after_earlier_attempts(self, event: InboundEvent, alert: Alert, earlier: Remediation | None) -> Decision | None:
        """The alert fires past its cooldown (or again) after `earlier`, its last remediation: that
        one did not resolve it. Past the attempts allowed, or after a reported failure, a human decides."""
        if earlier is None:
            return None
        if await self.outcomes.judge_unresolved(alert.identity, earlier.trigger_id):
            self._followed(event, alert, earlier, RemediationOutcome.NOT_RESOLVED)
        if earlier.failed:
            why = f"{earlier.function} reported that it failed on this alert (trigger {earlier.trigger_id})"
        elif earlier.attempts >= self.max_attempts_per_alert:
            why = (f"{earlier.attempts} remediations of this alert ({earlier.function} last) did not resolve it "
                   f"(AGENT_SRE_MAX_ATTEMPTS_PER_ALERT={self.max_attempts_per_alert})")
        else:
            return None
        return Decision(lambda_function=ESCALATE, confidence=1.0, method="outcomes", reasoning=f"{why}: a human decides")

    def _followed(self, event: InboundEvent, alert: Alert, remediation: Remediation, outcome: RemediationOutcome) -> None:
        seconds = round(self.outcomes.clock() - remediation.at, 3) if outcome is RemediationOutcome.RESOLVED else None
        extra = {"seconds_to_resolve": seconds} if seconds is not None else {}
        self._write(remediation, outcome, event_id=event.id, fingerprint=alert.identity,
                    alertname=alert.alertname, **extra)

    def _write(self, remediation: Remediation, outcome: RemediationOutcome, **extra: Any) -> None:
        """One audit record and one count per outcome, each carrying the trigger it follows."""
        self.metrics.outcome(remediation.function, outcome.value, extra.get("seconds_to_resolve"))
        self.trail.write({
            "correlation_id": remediation.correlation_id, **extra, "action": Action.OUTCOME,
            "outcome": outcome, "trigger_id": remediation.trigger_id, "function": remediation.function,
            "attempts": remediation.attempts,
        })
