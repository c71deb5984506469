"""From one input message to its triggers, then to exactly one settlement of that message.

`Pipeline` turns a message into a `Verdict` (publishing the triggers it decides on);
`Consumer` settles the message from the verdict: retry copy, dead letter or nothing, each
confirmed, and only then the ack. A failed settlement leaves the message unacked (requeued).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from ..errors import InputError, TransientError
from ..schemas.alert import Alert, parse_alerts
from ..schemas.cloudevent import InboundEvent, decode_event
from ..selectors.chain import Chain
from ..settings import Settings
from .audit import AuditLog
from .deadletter import attempts_of
from .limits import Limits, TtlSet
from .metrics import Metrics
from .publisher import Publisher

log = logging.getLogger(__name__)


@dataclass
class Verdict:
    """What handling one message came to; the consumer settles the message from it."""

    type_label: str = "other"
    alertnames: list[str] = field(default_factory=list)
    invalid: tuple[str, str] | None = None  # (dead-letter reason, error) for bad input
    publish_error: str | None = None  # set when some trigger could not be published
    undecided: list[str] = field(default_factory=list)


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
        published: TtlSet | None = None,
    ) -> None:
        self.accepted_types = set(settings.accepted_types)
        self.max_event_bytes = settings.max_event_bytes
        self.chain = chain
        self.limits = limits
        self.publisher = publisher
        self.metrics = metrics
        self.audit = audit
        self.published = published if published is not None else TtlSet(settings.dedup_ttl_s)
        self._in_progress: set[tuple[str, str]] = set()

    async def process(self, message: AbstractIncomingMessage) -> Verdict:
        verdict = Verdict()
        try:
            event = decode_event(
                message.body,
                message.headers,
                content_type=message.content_type,
                message_id=message.message_id,
                max_bytes=self.max_event_bytes,
            )
            if event.type not in self.accepted_types:
                raise InputError("unsupported_type", f"event type {event.type!r} is not accepted")
            verdict.type_label = event.type
            alerts = parse_alerts(event.data)
        except InputError as exc:
            verdict.invalid = (exc.reason, str(exc))
            return verdict
        verdict.alertnames = [alert.alertname for alert in alerts]
        for alert in alerts:
            await self._handle_alert(event, alert, verdict)
        return verdict

    async def _handle_alert(self, event: InboundEvent, alert: Alert, verdict: Verdict) -> None:
        if not alert.firing:
            self._audit(event, alert, "resolved")
            return
        key = (event.id, alert.correlation_id)
        # A redelivered (or concurrently delivered) event never publishes the same alert twice.
        if key in self.published or key in self._in_progress:
            self._audit(event, alert, "duplicate")
            return
        # A repeat (Alertmanager's repeat_interval, an HA pair, a storm) of an alert in its cooldown
        # would only be suppressed after the chain: suppress it before, at no model time.
        if self.limits.cooling(alert.identity):
            self.metrics.suppressed("cooldown")
            self._audit(event, alert, "suppressed:cooldown", reason="in its cooldown; the selectors were not asked")
            return
        self._in_progress.add(key)
        try:
            decision = await self.chain.decide(alert)
            if decision.ignored:  # needs nobody: acked, audited and counted, never dead-lettered
                self.metrics.ignored()
                self._audit(event, alert, "ignored", decision=decision.model_dump(mode="json"))
                return
            if not decision.decided:
                verdict.undecided.append(alert.alertname)
                self._audit(event, alert, "no_decision", decision=decision.model_dump(mode="json"))
                return
            function = decision.lambda_function or ""
            reservation = self.limits.reserve(alert.identity, function, decision.parameters.get("namespace", ""))
            if isinstance(reservation, str):
                self.metrics.suppressed(reservation)
                self._audit(event, alert, f"suppressed:{reservation}", decision=decision.model_dump(mode="json"))
                return
            try:
                trigger_id = await self.publisher.trigger(alert, decision)
            except TransientError as exc:
                reservation.release()
                verdict.publish_error = str(exc)
                self._audit(event, alert, "retry", decision=decision.model_dump(mode="json"), error=str(exc))
                return
            except BaseException:
                # Cancelled (shutdown) or broken mid-publish: the message is not acked and comes back,
                # and must then find the cooldown free, or the alert would be suppressed and lost.
                reservation.release()
                raise
            self.published.add(key)
            self.metrics.trigger_published(function)
            self._audit(event, alert, "published", decision=decision.model_dump(mode="json"), trigger_id=trigger_id)
        finally:
            self._in_progress.discard(key)

    def _audit(self, event: InboundEvent, alert: Alert, action: str, **extra: Any) -> None:
        record = {
            "event_id": event.id,
            "correlation_id": alert.correlation_id,
            "fingerprint": alert.identity,
            "alertname": alert.alertname,
            "labels": alert.labels,
            "action": action,
            **extra,
        }
        try:
            self.audit.write(record)
        except Exception:  # isolation point: a full disk must not change what happens to the alert
            log.exception("audit write failed for %s", alert.alertname)


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
        try:
            outcome = await self._settle(message, verdict)
            await message.ack()
        except TransientError as exc:
            log.warning("message %s requeued: %s", message.message_id, exc)
            self.metrics.event(verdict.type_label, "requeued")
            await _requeue(message)
            return
        except Exception:  # isolation point: the broker redelivers an unacked message
            log.exception("settling message %s failed", message.message_id)
            await _requeue(message)
            return
        self.metrics.event(verdict.type_label, outcome)

    async def _settle(self, message: AbstractIncomingMessage, verdict: Verdict) -> str:
        """Publish the retry copy or the dead letter the verdict calls for; return the outcome."""
        attempts = attempts_of(message.headers) + 1
        names = verdict.alertnames
        if verdict.publish_error is not None:
            if attempts >= self.max_attempts:
                return await self._dead_letter(message, "retries_exhausted", verdict.publish_error, attempts, names)
            queue = await self.publisher.retry(message, attempts, verdict.publish_error, names)
            self.metrics.retry("publish_failed")
            log.info("message %s: attempt %d failed, retrying through %s", message.message_id, attempts, queue)
            return "retry"
        if verdict.invalid is not None:
            reason, error = verdict.invalid
            return await self._dead_letter(message, reason, error, attempts, names)
        if verdict.undecided:
            error = f"no selector decided for {', '.join(verdict.undecided)}"
            return await self._dead_letter(message, "no_decision", error, attempts, names)
        return "processed"

    async def _dead_letter(
        self, message: AbstractIncomingMessage, reason: str, error: str, attempts: int, names: list[str]
    ) -> str:
        await self.publisher.dead_letter(message, reason, error, attempts, names)
        self.metrics.dead_letter(reason)
        log.warning("message %s dead-lettered: %s: %s", message.message_id, reason, error)
        return reason


async def _requeue(message: AbstractIncomingMessage) -> None:
    try:
        await message.nack(requeue=True)
    except Exception:  # isolation point: on a closed channel the broker requeues it anyway
        log.warning("could not nack message %s; the broker will redeliver it", message.message_id)
