"""From one input message to its triggers, then to exactly one settlement of that message.

`Pipeline` turns a message into a `Verdict` (publishing the triggers it decides on);
`Consumer` settles the message from the verdict: retry copy, dead letter or nothing, each
confirmed, and only then the ack. A failed settlement leaves the message unacked (requeued).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from .. import tracing
from ..errors import ConfigError, InputError, TransientError
from ..schemas.alert import Alert, parse_alerts
from ..schemas.catalog import ESCALATE
from ..schemas.cloudevent import InboundEvent, decode_event
from ..schemas.decision import Decision
from ..selectors.chain import Chain
from ..settings import APPROVAL_ANSWER_TYPES, RESULT_TYPE, Settings
from .approvals import APPROVAL_EXPIRED_TYPE, APPROVAL_GRANTED_TYPE, NEEDS_REDIS, Answer, Approval, RedisApprovals, State, parse_answer
from .audit import AuditLog
from .connection import ack
from .deadletter import attempts_of
from .limits import Claim, Limits, Refusal
from .metrics import Metrics
from .outcomes import LambdaResult, Outcome, Outcomes, Remediation, parse_result
from .publisher import Kind, Publisher
from .silences import Silences

log = logging.getLogger(__name__)


class Action(str, Enum):
    """What became of one alert: the `action` of its audit record (one record per alert)."""

    PUBLISHED = "published"
    OUTCOME = "outcome"  # what followed a remediation (agent_sre.worker.outcomes)
    RESULT_UNMATCHED = "result_unmatched"  # a function's result for no trigger awaiting one
    PROPOSED = "proposed"  # shadow mode: the proposal went out in place of the trigger
    APPROVAL_REQUESTED = "approval_requested"  # a human is asked; the trigger waits (approvals.py)
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
    DUPLICATE = Refusal.DUPLICATE.value
    BUSY = Refusal.BUSY.value  # another replica is publishing it: the message is looked at again
    SUPPRESSED_COOLDOWN = f"suppressed:{Refusal.COOLDOWN.value}"
    SUPPRESSED_RATE_LIMIT = f"suppressed:{Refusal.RATE_LIMIT.value}"
    SUPPRESSED_STORM = f"suppressed:{Refusal.STORM.value}"

    @classmethod
    def of(cls, refusal: Refusal) -> Action:
        if refusal in (Refusal.DUPLICATE, Refusal.BUSY):
            return cls(refusal.value)
        return cls(f"suppressed:{refusal.value}")


# Whose records wait for the message's settlement, so that the record says what became of it.
_SETTLED_LATER = (Action.NO_DECISION, Action.ALERT_ERROR, Action.RETRY, Action.BUSY)
MAX_ERROR_CHARS = 500  # of an exception's text in a decision's reasoning: it may quote a huge label


@dataclass
class Verdict:
    """What handling one message came to; the consumer settles the message from it."""

    type_label: str = "other"
    alertnames: list[str] = field(default_factory=list)
    invalid: tuple[str, str] | None = None  # (dead-letter reason, error) for bad input
    publish_error: str | None = None  # set when some trigger could not be published
    undecided: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # `alertname: error` for alerts whose handling raised
    busy: list[str] = field(default_factory=list)  # alerts another replica holds
    actions: int = 0  # active remediations this message triggered (the per-message storm cap)
    records: list[dict[str, Any]] = field(default_factory=list)  # audit records written at settlement


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
        self.accepted_types = set(settings.inbound_types)
        self.max_event_bytes = settings.max_event_bytes
        self.storm_per_message = settings.storm_per_message
        self.storm_per_minute = settings.storm_per_minute
        self.mode = settings.mode
        self.approval_risk = settings.approval_risk
        self.approval_ttl_s = settings.approval_ttl_s
        self.approvals = approvals
        self.silences = silences if settings.cooldown_s > 0 else None  # a silence lasts the cooldown
        self.silence_s = settings.cooldown_s
        self.max_attempts = settings.max_attempts_per_alert
        self.outcomes = outcomes
        self.chain = chain
        self.limits = limits
        self.publisher = publisher
        self.metrics = metrics
        self.audit = audit
        self._deciding: dict[str, str] = {}  # fingerprint -> event key, while decided in this process

    async def process(self, message: AbstractIncomingMessage) -> Verdict:
        verdict = Verdict()
        started = time.time_ns()
        try:
            event = decode_event(
                message.body,
                message.headers,
                content_type=message.content_type,
                message_id=message.message_id,
                max_bytes=self.max_event_bytes,
            )
        except InputError as exc:
            verdict.invalid = (exc.reason, str(exc))
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
                await self._handle_result(event, parse_result(event.data), verdict)
                return
            if event.type in APPROVAL_ANSWER_TYPES:
                await self._handle_answer(event, parse_answer(event.data), verdict)
                return
            alerts = parse_alerts(event.data)
        except InputError as exc:
            verdict.invalid = (exc.reason, str(exc))
            return
        except TransientError as exc:  # a result or answer not recorded yet: retried
            verdict.publish_error = str(exc)
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
                    self._audit(verdict, event, alert, Action.ALERT_ERROR, error=error)

    def settled(self, verdict: Verdict, **outcome: Any) -> None:
        """Write the records that waited for the message's settlement, with what became of it."""
        for record in verdict.records:
            self._write({**record, **outcome})
        verdict.records.clear()

    async def _handle_alert(self, event: InboundEvent, alert: Alert, verdict: Verdict) -> None:
        if not alert.firing:
            try:
                remediation = await self.outcomes.resolved(alert.identity)
            except TransientError as exc:  # its remediation's outcome would be lost: retried
                verdict.publish_error = str(exc)
                self._audit(verdict, event, alert, Action.RETRY, error=str(exc))
                return
            if remediation is not None:
                self._outcome(event, alert, remediation, Outcome.RESOLVED)
            self._audit(verdict, event, alert, Action.RESOLVED)
            await self._withdraw(event, alert, verdict)
            if remediation is not None and self.silences is not None:  # only a remediation silences
                await self.silences.expire(alert.correlation_id, alert.alertname)
            return
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
            await self._decide_and_publish(event, alert, verdict)
        except TransientError as exc:  # the shared state is unreachable: never act without it
            verdict.publish_error = str(exc)
            self._audit(verdict, event, alert, Action.RETRY, error=str(exc))
        finally:
            del self._deciding[alert.identity]

    async def _decide_and_publish(self, event: InboundEvent, alert: Alert, verdict: Verdict) -> None:
        key = f"{event.id}/{alert.correlation_id}"
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
        decision = await self._after_earlier_attempts(event, alert, earlier) or await self._decide(alert)
        dump = decision.model_dump(mode="json")
        if decision.ignored:  # needs nobody: acked, audited and counted, never dead-lettered
            self.metrics.ignored()
            self._audit(verdict, event, alert, Action.IGNORED, decision=dump)
            return
        if not decision.decided:
            verdict.undecided.append(alert.alertname)
            self._audit(verdict, event, alert, Action.NO_DECISION, decision=dump)
            return
        function = decision.lambda_function or ""
        active = function != ESCALATE
        if active and verdict.actions >= self.storm_per_message:
            claim: Claim | Refusal = Refusal.STORM
            why = f"this message already triggered {self.storm_per_message} remediations (AGENT_SRE_STORM_PER_MESSAGE)"
        else:
            claim = await self.limits.reserve(key, alert.identity, function, decision.parameters.get("namespace", ""), active)
            why = f"more than {self.storm_per_minute} remediations a minute (AGENT_SRE_STORM_PER_MINUTE)"
        if isinstance(claim, Refusal):
            storm_trigger = await self._escalate_storm(event, alert, why) if claim is Refusal.STORM else None
            extra = {"storm_escalation": storm_trigger} if storm_trigger else {}
            self._refused(verdict, event, alert, claim, decision=dump, **extra)
            return
        mode = self._mode(function)
        if mode == "approve":
            await self._request_approval(event, alert, decision, dump, claim, verdict)
            return
        proposed = mode == "shadow"
        try:
            trigger_id = await self._publish(event, alert, decision, Kind.PROPOSED if proposed else Kind.TRIGGER)
        except TransientError as exc:
            await claim.release()
            verdict.publish_error = str(exc)
            self._audit(verdict, event, alert, Action.RETRY, decision=dump, error=str(exc))
            return
        except BaseException:
            # Cancelled (shutdown) or broken mid-publish: the message is not acked and comes back,
            # and must then find the cooldown free, or the alert would be suppressed and lost.
            await claim.release()
            raise
        if active:
            verdict.actions += 1
        records = [claim.commit()]  # with Redis, sent at once: one round trip for both
        if active and not proposed:
            records.append(self.outcomes.triggered(alert.identity, alert.correlation_id, trigger_id, function))
        for record in records:
            try:
                await record
            except TransientError as exc:
                # Published all the same: retrying would trigger twice. The claim expires on its own.
                log.warning("trigger %s published, but its cooldown or outcome could not be recorded: %s", trigger_id, exc)
        self.metrics.trigger_published(function, proposed, decision.escalation)
        if active and not proposed:
            await self._silence(alert, function, trigger_id)
        action = Action.PROPOSED if proposed else Action.PUBLISHED
        self._audit(verdict, event, alert, action, decision=dump, trigger_id=trigger_id)

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

    async def _after_earlier_attempts(self, event: InboundEvent, alert: Alert, earlier: Remediation | None) -> Decision | None:
        """The alert fires past its cooldown (or again) after `earlier`, its last remediation: that
        one did not resolve it. Past the attempts allowed, or after a reported failure, a human decides."""
        if earlier is None:
            return None
        if await self.outcomes.judge_unresolved(alert.identity, earlier.trigger_id):
            self._outcome(event, alert, earlier, Outcome.NOT_RESOLVED)
        if earlier.failed:
            why = f"{earlier.function} reported that it failed on this alert (trigger {earlier.trigger_id})"
        elif earlier.attempts >= self.max_attempts:
            why = (f"{earlier.attempts} remediations of this alert ({earlier.function} last) did not resolve it "
                   f"(AGENT_SRE_MAX_ATTEMPTS_PER_ALERT={self.max_attempts})")
        else:
            return None
        return Decision(lambda_function=ESCALATE, confidence=1.0, method="outcomes", reasoning=f"{why}: a human decides")

    async def _handle_result(self, event: InboundEvent, result: LambdaResult, verdict: Verdict) -> None:
        remediation = await self.outcomes.reported(result.correlation_id, failed=result.status == "failed")
        record = {"event_id": event.id, "correlation_id": result.correlation_id, "status": result.status,
                  "result_message": result.message}
        if remediation is None:
            self._write({**record, "action": Action.RESULT_UNMATCHED.value})
            return
        self._write_outcome(remediation, Outcome(result.status), **record)
        if result.status == "failed" and self.silences is not None:  # a human must hear of it again
            await self.silences.expire(remediation.correlation_id)

    def _outcome(self, event: InboundEvent, alert: Alert, remediation: Remediation, outcome: Outcome) -> None:
        seconds = round(self.outcomes.clock() - remediation.at, 3) if outcome is Outcome.RESOLVED else None
        extra = {"seconds_to_resolve": seconds} if seconds is not None else {}
        self._write_outcome(remediation, outcome, event_id=event.id, fingerprint=alert.identity,
                            alertname=alert.alertname, **extra)

    def _write_outcome(self, remediation: Remediation, outcome: Outcome, **extra: Any) -> None:
        """One audit record and one count per outcome, each carrying the trigger it follows."""
        self.metrics.outcome(remediation.function, outcome.value, extra.get("seconds_to_resolve"))
        self._write({
            "correlation_id": remediation.correlation_id, **extra, "action": Action.OUTCOME.value,
            "outcome": outcome.value, "trigger_id": remediation.trigger_id, "function": remediation.function,
            "attempts": remediation.attempts,
        })

    def _mode(self, function: str) -> str:
        """`act`, `shadow` (proposed, not triggered) or `approve` (a human first) for this function."""
        return self.chain.catalog.mode(function, self.mode, self.approval_risk)

    async def _request_approval(
        self, event: InboundEvent, alert: Alert, decision: Decision, dump: dict[str, Any], claim: Claim, verdict: Verdict
    ) -> None:
        """Ask a human: the request's timer, then the request held in Redis, then its event. The
        claim (cooldown, tokens) holds from now: the trigger, if approved, takes no more."""
        assert self.approvals is not None  # the constructor refuses approve modes without them
        function = decision.lambda_function or ""
        request = Approval.of(alert, decision, self.approval_ttl_s)
        try:
            # The timer first: without a request it finds nothing when it comes back, and a request
            # stored without one would never expire.
            await self.publisher.approval_timer(alert.correlation_id)
            earlier = await self.approvals.request(request)
        except BaseException as exc:
            await claim.release()
            if not isinstance(exc, TransientError):
                raise
            verdict.publish_error = str(exc)
            self._audit(verdict, event, alert, Action.RETRY, decision=dump, error=str(exc))
            return
        if earlier is not None:
            await claim.release()  # nothing acted
            if earlier.state in (State.DENIED, State.EXPIRED):  # this very occurrence was refused
                await self._escalate_refused(event, alert, earlier, earlier.state, earlier.by or "", verdict)
            else:
                self._audit(verdict, event, alert, Action.APPROVAL_PENDING, decision=dump,
                            reason=f"its approval request for {earlier.function} waits for an answer")
            return
        try:
            request_id = await self._publish(
                event, alert, decision, Kind.APPROVAL_REQUESTED, {"phases": dump["phases"], "expires_at": request.expires_at}
            )
        except BaseException as exc:
            await claim.release()
            try:
                await self.approvals.cancel(alert.correlation_id)
            except TransientError:  # held without its event: its timer still ends it in escalate
                log.warning("approval request for %s could not be withdrawn after its publish failed", alert.correlation_id)
            if not isinstance(exc, TransientError):
                raise
            verdict.publish_error = str(exc)
            self._audit(verdict, event, alert, Action.RETRY, decision=dump, error=str(exc))
            return
        try:
            await claim.commit()
        except TransientError as exc:
            log.warning("approval request %s published, but its cooldown could not be recorded: %s", request_id, exc)
        self.metrics.approval(function, "requested")
        self._audit(verdict, event, alert, Action.APPROVAL_REQUESTED, decision=dump, trigger_id=request_id)

    async def _handle_answer(self, event: InboundEvent, answer: Answer, verdict: Verdict) -> None:
        """A human's answer, or the request's timer: the trigger, or escalate."""
        correlation_id = answer.correlation_id
        expired = event.type == APPROVAL_EXPIRED_TYPE
        unmatched = {"event_id": event.id, "correlation_id": correlation_id, "by": answer.by,
                     "action": Action.APPROVAL_UNMATCHED.value}
        if self.approvals is None:
            self._write({**unmatched, "reason": "approvals are off (no AGENT_SRE_APPROVAL_RISK or mode: approve)"})
            return
        taken = await self.approvals.take(correlation_id, expired=expired)
        if isinstance(taken, str):
            if not expired:  # a timer whose request was answered in time is no news
                self._write({**unmatched, "reason": f"no request waits for an answer ({taken})"})
            return
        alert, decision = taken.rebuilt()
        if expired:
            await self._escalate_refused(event, alert, taken, State.EXPIRED, "", verdict, take=True)
            return
        if event.type != APPROVAL_GRANTED_TYPE:
            await self._escalate_refused(event, alert, taken, State.DENIED, answer.by or "", verdict, take=True)
            return
        by = answer.by or "unknown"
        try:
            trigger_id = await self._publish(event, alert, decision, Kind.TRIGGER, {"approved_by": by})
        except BaseException:
            await self._give_back(correlation_id)
            raise  # TransientError: the answer is retried
        try:
            await self.approvals.finish(correlation_id, State.APPROVED, by)
            await self.outcomes.triggered(alert.identity, correlation_id, trigger_id, taken.function)
        except TransientError as exc:
            log.warning("trigger %s published on approval, but that could not be recorded: %s", trigger_id, exc)
        self.metrics.approval(taken.function, State.APPROVED.value)
        self.metrics.trigger_published(taken.function)
        await self._silence(alert, taken.function, trigger_id)
        self._audit(verdict, event, alert, Action.PUBLISHED, decision=taken.decision, trigger_id=trigger_id, by=by)

    async def _escalate_refused(
        self, event: InboundEvent, alert: Alert, approval: Approval, state: State, by: str, verdict: Verdict,
        take: bool = False,
    ) -> None:
        """Denied, or unanswered in time: a human decides. With `take`, this replica holds the
        request and records the answer once the escalate is out."""
        why = (f"{approval.function} was denied by {by or 'someone'}" if state is State.DENIED else
               f"nobody approved {approval.function} within {self.approval_ttl_s:g}s (AGENT_SRE_APPROVAL_TTL_S)")
        escalation = Decision(lambda_function=ESCALATE, confidence=1.0, method="approval", reasoning=f"{why}: a human decides")
        try:
            trigger_id = await self._publish(event, alert, escalation)
        except BaseException:
            if take:
                await self._give_back(approval.correlation_id)
            raise
        if take:
            try:
                await self.approvals.finish(approval.correlation_id, state, by)  # type: ignore[union-attr]
            except TransientError as exc:
                log.warning("escalated %s, but the approval's answer could not be recorded: %s", trigger_id, exc)
            self.metrics.approval(approval.function, state.value)
        self.metrics.trigger_published(ESCALATE)
        action = Action.APPROVAL_DENIED if state is State.DENIED else Action.APPROVAL_EXPIRED
        self._audit(verdict, event, alert, action, decision=escalation.model_dump(mode="json"), trigger_id=trigger_id,
                    by=by or None)

    async def _publish(
        self, event: InboundEvent, alert: Alert, decision: Decision, kind: Kind = Kind.TRIGGER,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Publish an event about this decision, in a span of its own that the event names as its
        parent (or, tracing off, with the input's own trace context)."""
        with tracing.span(f"publish {decision.lambda_function}", kind=tracing.PRODUCER,
                          correlation_id=alert.correlation_id, event_type=kind.value):
            return await self.publisher.trigger(alert, decision, kind, extra, tracing.outbound(event.trace))

    async def _silence(self, alert: Alert, function: str, trigger_id: str) -> None:
        """While its remediation runs (the cooldown), the alert's repeats page nobody."""
        if self.silences is not None:
            await self.silences.silence(alert, function, trigger_id, self.silence_s)

    async def _give_back(self, correlation_id: str) -> None:
        try:
            await self.approvals.give_back(correlation_id)  # type: ignore[union-attr]
        except TransientError:  # its lease runs out on its own
            log.warning("approval %s stays taken until its lease runs out", correlation_id)

    async def _withdraw(self, event: InboundEvent, alert: Alert, verdict: Verdict) -> None:
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
            self._audit(verdict, event, alert, Action.APPROVAL_WITHDRAWN,
                        reason=f"resolved before anyone answered the request for {withdrawn.function}")

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
        proposed = self._mode(ESCALATE) == "shadow"
        try:
            trigger_id = await self._publish(event, alert, decision, Kind.PROPOSED if proposed else Kind.TRIGGER)
        except BaseException:
            await self.limits.release_storm_escalation()  # the next alert refused for the storm tries again
            raise
        self.metrics.trigger_published(ESCALATE, proposed)
        log.warning("alert storm: escalated once (%s); %s", trigger_id, why)
        return trigger_id

    def _refused(self, verdict: Verdict, event: InboundEvent, alert: Alert, refusal: Refusal, **extra: Any) -> None:
        if refusal is Refusal.BUSY:
            verdict.busy.append(alert.alertname)
        elif refusal is not Refusal.DUPLICATE:
            self.metrics.suppressed(refusal.value)
        self._audit(verdict, event, alert, Action.of(refusal), **extra)

    def _audit(self, verdict: Verdict, event: InboundEvent, alert: Alert, action: Action, **extra: Any) -> None:
        record = {
            "event_id": event.id,
            "correlation_id": alert.correlation_id,
            "fingerprint": alert.identity,
            "alertname": alert.alertname,
            "labels": alert.labels,
            "action": action.value,
            **extra,
        }
        if action in _SETTLED_LATER:
            verdict.records.append(record)
        else:
            self._write(record)

    def _write(self, record: dict[str, Any]) -> None:
        try:
            self.audit.write(record)
        except Exception:  # isolation point: a full disk must not change what happens to the alert
            log.exception("audit write failed for %s", record.get("alertname"))


class Consumer:
    """The aio-pika callback: bounded concurrency, one settlement and then one ack per message."""

    def __init__(self, pipeline: Pipeline, publisher: Publisher, metrics: Metrics, settings: Settings) -> None:
        self.pipeline = pipeline
        self.publisher = publisher
        self.metrics = metrics
        self.max_attempts = settings.retry_max_attempts
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        self._in_flight += 1
        self._idle.clear()
        try:
            async with self._slots:
                await self._handle(message)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait for the messages in hand to be settled; False if some still are not."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except asyncio.TimeoutError:
            return False
        return True

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        try:
            verdict = await self.pipeline.process(message)
        except Exception as exc:  # isolation point: one bad message must not stop the consumer
            log.exception("handling message %s failed", message.message_id)
            verdict = Verdict(invalid=("internal_error", f"{type(exc).__name__}: {exc}"))
        # Shielded: a shutdown that cancels this task must not leave a settlement half done (a
        # retry copy published but the message not acked would then come back twice).
        await asyncio.shield(self._settle_and_ack(message, verdict))

    async def _settle_and_ack(self, message: AbstractIncomingMessage, verdict: Verdict) -> None:
        try:
            outcome, fate = await self._settle(message, verdict)
            await ack(message)
        except TransientError as exc:
            log.warning("message %s requeued: %s", message.message_id, exc)
            self.metrics.event(verdict.type_label, "requeued")
            self.pipeline.settled(verdict, message="requeued", error=str(exc))
            await _requeue(message)
            return
        except Exception as exc:  # isolation point: the broker redelivers an unacked message
            log.exception("settling message %s failed", message.message_id)
            self.pipeline.settled(verdict, message="requeued", error=f"{type(exc).__name__}: {exc}")
            await _requeue(message)
            return
        self.pipeline.settled(verdict, **fate)
        self.metrics.event(verdict.type_label, outcome)

    async def _settle(self, message: AbstractIncomingMessage, verdict: Verdict) -> tuple[str, dict[str, Any]]:
        """Publish the retry copy or the dead letter the verdict calls for. Returns the outcome (the
        metric's label) and what became of the message, for the audit records that waited for it."""
        attempts = attempts_of(message.headers) + 1
        names = verdict.alertnames
        if verdict.publish_error is not None:
            if attempts >= self.max_attempts:
                return await self._dead_letter(message, "retries_exhausted", verdict.publish_error, attempts, names)
            queue = await self.publisher.retry(message, attempts, verdict.publish_error, names)
            self.metrics.retry("publish_failed")
            log.info("message %s: attempt %d failed, retrying through %s", message.message_id, attempts, queue)
            return "retry", {"message": "retry", "attempt": attempts, "queue": queue}
        if verdict.invalid is not None:
            reason, error = verdict.invalid
            outcome, fate = await self._dead_letter(message, reason, error, attempts, names)
            self.pipeline.settled(Verdict(records=[{"message_id": message.message_id, "action": "invalid", "error": error}]), **fate)
            return outcome, fate
        if verdict.busy:
            # Another replica holds these alerts' claims; not a failure, so no attempt is counted.
            error = f"another replica is publishing {', '.join(verdict.busy)}"
            queue = await self.publisher.retry(message, attempts - 1, error, names, reason="busy")
            self.metrics.retry("busy")
            return "busy", {"message": "busy", "queue": queue}
        if verdict.failed:
            error = f"handling failed for {'; '.join(verdict.failed)}"
            return await self._dead_letter(message, "alert_error", error, attempts, names)
        if verdict.undecided:
            error = f"no selector decided for {', '.join(verdict.undecided)}"
            return await self._dead_letter(message, "no_decision", error, attempts, names)
        return "processed", {}

    async def _dead_letter(
        self, message: AbstractIncomingMessage, reason: str, error: str, attempts: int, names: list[str]
    ) -> tuple[str, dict[str, Any]]:
        await self.publisher.dead_letter(message, reason, error, attempts, names)
        self.metrics.dead_letter(reason)
        log.warning("message %s dead-lettered: %s: %s", message.message_id, reason, error)
        return reason, {"message": "dead_lettered", "dead_letter_reason": reason}


async def _requeue(message: AbstractIncomingMessage) -> None:
    try:
        await message.nack(requeue=True)
    except Exception:  # isolation point: on a closed channel the broker requeues it anyway
        log.warning("could not nack message %s; the broker will redeliver it", message.message_id)
