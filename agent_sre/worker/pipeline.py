"""The decision path of one input message: decode, then for each alert check the limits, decide,
reserve and publish. `Pipeline.process` fills a `Verdict`; the consumer settles the message from it.

A function's result goes to `OutcomeFlow`, an approval's answer to `ApprovalFlow`; audit records
go through the `AuditTrail`. A step that cannot finish raises: a `TransientError` (a `Retry` from
`holding`) retries the message, any other error dead-letters the one alert it broke.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from .. import tracing
from ..errors import ConfigError, InputError, Retry, TransientError
from ..schemas.alert import Alert, parse_alerts
from ..schemas.audit import Action
from ..schemas.catalog import ESCALATE, Mode
from ..schemas.cloudevent import InboundEvent, decode_event
from ..schemas.decision import Decision
from ..schemas.events import APPROVAL_ANSWER_TYPES, RESULT_TYPE
from ..schemas.verdict import Verdict
from ..selectors.chain import Chain
from ..settings import Settings
from .approval_flow import ApprovalFlow
from .approvals import NEEDS_REDIS, RedisApprovals, parse_approval_answer
from .audit import AuditLog, AuditTrail
from .holding import holding, recorded
from .limits import Claim, Limits, Refusal
from .metrics import Metrics
from .outcome_flow import OutcomeFlow
from .outcomes import Outcomes, parse_result
from .publisher import Kind, Publisher
from .silences import Silences
from .triggers import Triggers

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 500  # of an exception's text in a decision's reasoning: it may quote a huge label


class Pipeline:
    """Decode, select, limit and publish. Collaborators are passed in, so each can be swapped."""

    def __init__(
        self,
        settings: Settings,
        chain: Chain,
        limits: Limits,
        publisher: Publisher,
        metrics: Metrics,
        audit: AuditLog,
        outcomes: Outcomes,
        approvals: RedisApprovals | None = None,
        silences: Silences | None = None,
    ) -> None:
        if approvals is None and chain.catalog.needs_approvals(settings.mode, settings.approval_risk):
            raise ConfigError(NEEDS_REDIS)
        self.settings = settings
        self.accepted_types = set(settings.inbound_types)
        self.max_event_bytes = settings.max_event_bytes
        self.chain = chain
        self.limits = limits
        self.publisher = publisher
        self.metrics = metrics
        self.outcomes = outcomes
        self.trail = AuditTrail(audit)
        self.triggers = Triggers(publisher, silences, settings.cooldown_s)
        self.outcome_flow = OutcomeFlow(outcomes, metrics, self.trail, self.triggers, settings.max_attempts_per_alert)
        self.approval_flow = ApprovalFlow(approvals, settings.approval_ttl_s, self.triggers, outcomes, metrics, self.trail)
        self._deciding: dict[str, str] = {}  # fingerprint -> event key, while decided in this process

    async def process(self, message: AbstractIncomingMessage) -> Verdict:
        verdict = Verdict()
        started = time.time_ns()
        try:
            event = decode_event(message.body, message.headers, content_type=message.content_type,
                                 message_id=message.message_id, max_bytes=self.max_event_bytes)
        except InputError as exc:
            verdict.invalid = exc
            return verdict
        with tracing.span(f"process {event.type}", parent=tracing.context_of(event.trace), kind=tracing.CONSUMER,
                          start_time=started, event_id=event.id):
            tracing.interval("decode", started, time.time_ns())
            await self._process(event, verdict)
        return verdict

    async def _process(self, event: InboundEvent, verdict: Verdict) -> None:
        try:
            if event.type not in self.accepted_types:
                raise InputError("unsupported_type", f"event type {event.type!r} is not accepted")
            verdict.type_label = event.type
            if event.type == RESULT_TYPE:
                await self.outcome_flow.result(event, parse_result(event.data))
                return
            if event.type in APPROVAL_ANSWER_TYPES:
                await self.approval_flow.answer(event, parse_approval_answer(event.data), verdict)
                return
            alerts = parse_alerts(event.data)
        except InputError as exc:
            verdict.invalid = exc
            return
        except TransientError as exc:  # a result or answer not recorded yet: retried
            verdict.retry_reason = str(exc)
            return
        verdict.alertnames = [alert.alertname for alert in alerts]
        for alert in alerts:
            with tracing.span(f"alert {alert.alertname}", correlation_id=alert.correlation_id):
                try:
                    await self._handle_alert(event, alert, verdict)
                except Exception as exc:  # isolation point: the webhook's other alerts are handled as usual
                    log.exception("handling %s (%s) failed", alert.alertname, alert.correlation_id)
                    error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
                    verdict.failed.append(f"{alert.alertname}: {error}")
                    self.trail.alert(verdict, event, alert, Action.ALERT_ERROR, error=error)

    async def _handle_alert(self, event: InboundEvent, alert: Alert, verdict: Verdict) -> None:
        """One alert. Without the shared state (a TransientError), nothing acts: the message is retried."""
        try:
            if alert.firing:
                await self._firing(event, alert, verdict)
            else:
                await self._resolved(event, alert, verdict)
        except TransientError as exc:
            verdict.retry_reason = str(exc)
            audit = exc.audit if isinstance(exc, Retry) else {}
            self.trail.alert(verdict, event, alert, Action.RETRY, **audit, error=str(exc))

    async def _resolved(self, event: InboundEvent, alert: Alert, verdict: Verdict) -> None:
        remediation = await self.outcome_flow.resolved(event, alert)
        self.trail.alert(verdict, event, alert, Action.RESOLVED)
        await self.approval_flow.withdraw(event, alert, verdict)
        if remediation is not None:  # only a remediation silences
            await self.triggers.unsilence(alert.correlation_id, alert.alertname)

    async def _firing(self, event: InboundEvent, alert: Alert, verdict: Verdict) -> None:
        # One decision per alert at a time in this process. A repeat arriving meanwhile would only
        # meet the cooldown that decision starts, or share its fate (its retry, its dead letter),
        # so it is suppressed at once: it neither runs the selectors nor holds a slot waiting.
        key = f"{event.id}/{alert.correlation_id}"
        if (deciding := self._deciding.get(alert.identity)) is not None:
            refusal = Refusal.DUPLICATE if deciding == key else Refusal.COOLDOWN  # the same event, or a repeat
            self._refused(verdict, event, alert, refusal, reason="a decision on this alert is under way")
            return
        self._deciding[alert.identity] = key
        try:
            await self._decide_and_publish(event, alert, verdict, key)
        finally:
            del self._deciding[alert.identity]

    async def _decide_and_publish(self, event: InboundEvent, alert: Alert, verdict: Verdict, key: str) -> None:
        """Limits, decision, claim, then the decision's event: a trigger, a proposal or a request."""
        # A redelivery, or a repeat in the cooldown (Alertmanager's repeat_interval, an HA pair, a
        # storm), is settled before the selectors: a repeat costs no model time.
        looking_up = self.outcomes.last(alert.identity)  # with Redis, sent now: one round trip with the check
        try:
            refusal = await self.limits.check(key, alert.identity)
        finally:
            earlier = await looking_up  # awaited whatever the check gave; it fails with the check's round trip
        if refusal:
            self._refused(verdict, event, alert, refusal, reason="the selectors were not asked")
            return
        decision = await self.outcome_flow.after_earlier_attempts(event, alert, earlier) or await self._decide(alert)
        dump = decision.model_dump(mode="json")
        if decision.ignored:  # needs nobody: acked, audited and counted, never dead-lettered
            self.metrics.ignored()
            self.trail.alert(verdict, event, alert, Action.IGNORED, decision=dump)
            return
        if not decision.decided:
            verdict.undecided.append(alert.alertname)
            self.trail.alert(verdict, event, alert, Action.NO_DECISION, decision=dump)
            return
        function = decision.lambda_function or ""
        claim = await self._reserve(event, alert, verdict, key, function, decision, dump)
        if claim is None:
            return
        mode = self._mode(function)
        if mode is Mode.APPROVE:
            await self.approval_flow.request(event, alert, decision, dump, claim, verdict)
            return
        await self._publish(event, alert, verdict, decision, dump, claim, proposed=mode is Mode.SHADOW)

    async def _reserve(self, event: InboundEvent, alert: Alert, verdict: Verdict, key: str, function: str,
                       decision: Decision, dump: dict[str, Any]) -> Claim | None:
        """The alert's claim (cooldown, tokens, storm cap); None, audited, when it is refused."""
        active = function != ESCALATE
        cap = self.settings.storm_per_message
        if active and verdict.actions >= cap:
            claim: Claim | Refusal = Refusal.STORM
            why = f"this message already triggered {cap} remediations (AGENT_SRE_STORM_PER_MESSAGE)"
        else:
            claim = await self.limits.reserve(key, alert.identity, function, decision.parameters.get("namespace", ""), active)
            why = f"more than {self.settings.storm_per_minute} remediations a minute (AGENT_SRE_STORM_PER_MINUTE)"
        if not isinstance(claim, Refusal):
            return claim
        storm_trigger = await self._escalate_storm(event, alert, why) if claim is Refusal.STORM else None
        extra = {"storm_escalation": storm_trigger} if storm_trigger else {}
        self._refused(verdict, event, alert, claim, decision=dump, **extra)
        return None

    async def _publish(self, event: InboundEvent, alert: Alert, verdict: Verdict, decision: Decision,
                       dump: dict[str, Any], claim: Claim, proposed: bool) -> None:
        """The trigger (or, in shadow mode, the proposal); then its cooldown and outcome recorded."""
        function = decision.lambda_function or ""
        active = function != ESCALATE
        async with holding(claim.release, retry={"decision": dump}):
            trigger_id = await self.triggers.publish(event, alert, decision, Kind.PROPOSED if proposed else Kind.TRIGGER)
        if active:
            verdict.actions += 1
        records = [claim.commit()]  # with Redis, sent at once: one round trip for both
        if not proposed:
            records.append(self.outcome_flow.awaiting(alert, function, trigger_id))
        await recorded(trigger_id, *records)
        self.metrics.trigger_published(function, proposed, decision.escalation)
        if active and not proposed:
            await self.triggers.silence(alert, function, trigger_id)
        action = Action.PROPOSED if proposed else Action.PUBLISHED
        self.trail.alert(verdict, event, alert, action, decision=dump, trigger_id=trigger_id)

    async def _decide(self, alert: Alert) -> Decision:
        """The chain's decision; where deciding raises, an escalate: a human hears of the alert, and
        it goes through the limits and the audit as any decision does."""
        try:
            return await self.chain.decide(alert)
        except Exception as exc:  # isolation point: an alert that breaks the chain escalates alone
            log.exception("deciding %s (%s) failed; it is escalated", alert.alertname, alert.correlation_id)
            error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
            return Decision(lambda_function=ESCALATE, method="error",
                            reasoning=f"deciding this alert failed ({error}): a human decides")

    def _mode(self, function: str) -> Mode:
        """Act, shadow (proposed, not triggered) or approve (a human first) for this function."""
        return self.chain.catalog.mode(function, self.settings.mode, self.settings.approval_risk)

    async def _escalate_storm(self, event: InboundEvent, alert: Alert, why: str) -> str | None:
        """One escalate per storm window, fleet-wide, instead of one per suppressed alert."""
        if not await self.limits.claim_storm_escalation():
            return None
        decision = Decision(
            lambda_function=ESCALATE,
            confidence=1.0,
            method="storm",
            reasoning=f"alert storm: {why}; remediations past the cap are suppressed, this alert was the first",
        )
        proposed = self._mode(ESCALATE) is Mode.SHADOW
        # Not published: the next alert refused for the storm tries again.
        async with holding(self.limits.release_storm_escalation):
            trigger_id = await self.triggers.publish(event, alert, decision, Kind.PROPOSED if proposed else Kind.TRIGGER)
        if not proposed:
            await recorded(trigger_id, self.outcome_flow.awaiting(alert, ESCALATE, trigger_id))
        self.metrics.trigger_published(ESCALATE, proposed)
        log.warning("alert storm: escalated once (%s); %s", trigger_id, why)
        return trigger_id

    def _refused(self, verdict: Verdict, event: InboundEvent, alert: Alert, refusal: Refusal, **extra: Any) -> None:
        if refusal is Refusal.BUSY:
            verdict.busy.append(alert.alertname)
        elif refusal is not Refusal.DUPLICATE:
            self.metrics.suppressed(refusal.value)
        self.trail.alert(verdict, event, alert, Action.of(refusal), **extra)
