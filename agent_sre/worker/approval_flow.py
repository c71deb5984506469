"""Asking a human before a function acts (`mode: approve`, AGENT_SRE_APPROVAL_RISK), and acting
on the answer: the trigger when granted; escalate when denied or unanswered in time.

The request's timer is parked first, then the request is held in Redis
(`agent_sre.worker.approvals`), then its event goes out; the alert's claim (cooldown, tokens)
holds from then on, so the trigger, once approved, takes no more.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import TransientError
from ..schemas.alert import Alert
from ..schemas.audit import Action
from ..schemas.catalog import ESCALATE
from ..schemas.cloudevent import InboundEvent
from ..schemas.decision import Decision
from ..schemas.events import APPROVAL_EXPIRED_TYPE, APPROVAL_GRANTED_TYPE
from ..schemas.verdict import Verdict
from .approvals import Answer, Approval, NotTaken, RedisApprovals, State
from .audit import AuditTrail
from .holding import holding, recorded
from .limits import Claim
from .metrics import Metrics
from .outcomes import Outcomes
from .publisher import Kind
from .triggers import Triggers

log = logging.getLogger(__name__)


class ApprovalFlow:
    """`approvals` None: approvals are off; an answer then matches nothing."""

    def __init__(self, approvals: RedisApprovals | None, ttl_s: float, triggers: Triggers, outcomes: Outcomes,
                 metrics: Metrics, trail: AuditTrail) -> None:
        self.approvals = approvals
        self.ttl_s = ttl_s
        self.triggers = triggers
        self.outcomes = outcomes
        self.metrics = metrics
        self.trail = trail

    async def request(
        self, event: InboundEvent, alert: Alert, decision: Decision, dump: dict[str, Any], claim: Claim, verdict: Verdict
    ) -> None:
        """Ask a human: the request's timer, then the request held in Redis, then its event."""
        assert self.approvals is not None  # the pipeline refuses approve modes without them
        approvals = self.approvals
        request = Approval.of(alert, decision, self.ttl_s)
        async with holding(claim.release, retry={"decision": dump}):
            # The timer first: without a request it finds nothing when it comes back, and a request
            # stored without one would never expire.
            await self.triggers.publisher.approval_timer(alert.correlation_id)
            earlier = await approvals.request(request)
        if earlier is not None:
            await claim.release()  # nothing acted
            if earlier.state in (State.DENIED, State.EXPIRED):  # this very occurrence was refused
                await self._escalate_refused(event, alert, earlier, earlier.state, earlier.by or "", verdict)
            else:
                self.trail.alert(verdict, event, alert, Action.APPROVAL_PENDING, decision=dump,
                                 reason=f"its approval request for {earlier.function} waits for an answer")
            return
        extra = {"phases": dump["phases"], "expires_at": request.expires_at}
        async with holding(claim.release, lambda: self._cancel(alert.correlation_id), retry={"decision": dump}):
            request_id = await self.triggers.publish(event, alert, decision, Kind.APPROVAL_REQUESTED, extra)
        await recorded(request_id, claim.commit())
        self.metrics.approval(request.function, "requested")
        self.trail.alert(verdict, event, alert, Action.APPROVAL_REQUESTED, decision=dump, trigger_id=request_id)

    async def answer(self, event: InboundEvent, answer: Answer, verdict: Verdict) -> None:
        """A human's answer, or the request's timer: the trigger, or escalate. A TransientError
        retries the answer."""
        correlation_id = answer.correlation_id
        expired = event.type == APPROVAL_EXPIRED_TYPE
        unmatched = {"event_id": event.id, "correlation_id": correlation_id, "by": answer.by,
                     "action": Action.APPROVAL_UNMATCHED}
        if self.approvals is None:
            self.trail.write({**unmatched, "reason": "approvals are off (no AGENT_SRE_APPROVAL_RISK or mode: approve)"})
            return
        taken = await self.approvals.take(correlation_id, expired=expired)
        if isinstance(taken, NotTaken):
            if not expired:  # a timer whose request was answered in time is no news
                self.trail.write({**unmatched, "reason": f"no request waits for an answer ({taken.value})"})
            return
        alert, decision = taken.rebuilt()
        if expired:
            await self._escalate_refused(event, alert, taken, State.EXPIRED, "", verdict, take=True)
            return
        if event.type != APPROVAL_GRANTED_TYPE:
            await self._escalate_refused(event, alert, taken, State.DENIED, answer.by or "", verdict, take=True)
            return
        by = answer.by or "unknown"
        async with holding(lambda: self._give_back(correlation_id)):  # the answer is retried
            trigger_id = await self.triggers.publish(event, alert, decision, Kind.TRIGGER, {"approved_by": by})
        await recorded(trigger_id, self.approvals.finish(correlation_id, State.APPROVED, by),
                       self.outcomes.triggered(alert.identity, correlation_id, trigger_id, taken.function))
        self.metrics.approval(taken.function, State.APPROVED.value)
        self.metrics.trigger_published(taken.function)
        await self.triggers.silence(alert, taken.function, trigger_id)
        self.trail.alert(verdict, event, alert, Action.PUBLISHED, decision=taken.decision, trigger_id=trigger_id, by=by)

    async def withdraw(self, event: InboundEvent, alert: Alert, verdict: Verdict) -> None:
        """The alert resolved while a human was asked: nothing is left to approve."""
        if self.approvals is None:
            return
        try:
            withdrawn = await self.approvals.withdraw(alert.correlation_id)
        except TransientError as exc:  # its answer or timer still finds the request; logged, not retried
            log.warning("approval request for %s could not be withdrawn: %s", alert.alertname, exc)
            return
        if withdrawn is not None:
            self.metrics.approval(withdrawn.function, State.WITHDRAWN.value)
            self.trail.alert(verdict, event, alert, Action.APPROVAL_WITHDRAWN,
                             reason=f"resolved before anyone answered the request for {withdrawn.function}")

    async def _escalate_refused(
        self, event: InboundEvent, alert: Alert, approval: Approval, state: State, by: str, verdict: Verdict,
        take: bool = False,
    ) -> None:
        """Denied, or unanswered in time: a human decides. With `take`, this replica holds the
        request and records the answer once the escalate is out."""
        why = (f"{approval.function} was denied by {by or 'someone'}" if state is State.DENIED else
               f"nobody approved {approval.function} within {self.ttl_s:g}s (AGENT_SRE_APPROVAL_TTL_S)")
        escalation = Decision(lambda_function=ESCALATE, confidence=1.0, method="approval", reasoning=f"{why}: a human decides")
        give_back = (lambda: self._give_back(approval.correlation_id),) if take else ()
        async with holding(*give_back):
            trigger_id = await self.triggers.publish(event, alert, escalation)
        records = [self.outcomes.escalated(alert.correlation_id, trigger_id)]
        if take:
            records.append(self.approvals.finish(approval.correlation_id, state, by))  # type: ignore[union-attr]
        await recorded(trigger_id, *records)
        if take:
            self.metrics.approval(approval.function, state.value)
        self.metrics.trigger_published(ESCALATE)
        action = Action.APPROVAL_DENIED if state is State.DENIED else Action.APPROVAL_EXPIRED
        self.trail.alert(verdict, event, alert, action, decision=escalation.model_dump(mode="json"), trigger_id=trigger_id,
                         by=by or None)

    async def _give_back(self, correlation_id: str) -> None:
        try:
            await self.approvals.give_back(correlation_id)  # type: ignore[union-attr]
        except TransientError:  # its lease runs out on its own
            log.warning("approval %s stays taken until its lease runs out", correlation_id)

    async def _cancel(self, correlation_id: str) -> None:
        try:
            await self.approvals.cancel(correlation_id)  # type: ignore[union-attr]
        except TransientError:  # held without its event: its timer still ends it in escalate
            log.warning("approval request for %s could not be withdrawn after its publish failed", correlation_id)
