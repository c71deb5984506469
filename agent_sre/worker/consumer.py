"""From one input message to exactly one settlement of it.

`Consumer` is the aio-pika callback: it asks the pipeline (`agent_sre.worker.pipeline`) for the
message's `Verdict`, maps the verdict to a `Settlement` (a retry copy, a dead letter, or nothing,
each confirmed), then acks. It alone settles: a failed settlement leaves the message unacked
(requeued). Once settled, the audit records that waited for the settlement are written.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from ..errors import InputError, TransientError
from ..schemas.audit import Action, Settlement
from ..schemas.verdict import Verdict
from ..settings import Settings
from .audit import AuditTrail
from .connection import ack
from .deadletter import attempts_of
from .metrics import Metrics
from .pipeline import Pipeline
from .publisher import Publisher

log = logging.getLogger(__name__)


class Consumer:
    """The aio-pika callback: bounded concurrency, one settlement and then one ack per message."""

    def __init__(self, pipeline: Pipeline, publisher: Publisher, metrics: Metrics, settings: Settings) -> None:
        self.pipeline = pipeline
        self.trail: AuditTrail = pipeline.trail
        self.publisher = publisher
        self.metrics = metrics
        self.retry_max_attempts = settings.retry_max_attempts  # deliveries of one message, not remediations
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
            verdict = Verdict(invalid=InputError("internal_error", f"{type(exc).__name__}: {exc}"))
        # Shielded: a shutdown that cancels this task must not leave a settlement half done (a
        # retry copy published but the message not acked would then come back twice).
        await asyncio.shield(self._settle_and_ack(message, verdict))

    async def _settle_and_ack(self, message: AbstractIncomingMessage, verdict: Verdict) -> None:
        try:
            label, fate = await self._settle(message, verdict)
            await ack(message)
        except Exception as exc:  # isolation point: the broker redelivers an unacked message
            if isinstance(exc, TransientError):
                log.warning("message %s requeued: %s", message.message_id, exc)
                self.metrics.event(verdict.type_label, Settlement.REQUEUED.value)
                error = str(exc)
            else:
                log.exception("settling message %s failed", message.message_id)
                error = f"{type(exc).__name__}: {exc}"
            self.trail.settled(verdict, message=Settlement.REQUEUED, error=error)
            await _requeue(message)
            return
        self.trail.settled(verdict, **fate)
        self.metrics.event(verdict.type_label, label)

    async def _settle(self, message: AbstractIncomingMessage, verdict: Verdict) -> tuple[str, dict[str, Any]]:
        """Publish the retry copy or the dead letter the verdict calls for. Returns the metric's
        label (the settlement, or a dead letter's reason) and what became of the message, for the
        audit records that waited for it."""
        attempts = attempts_of(message.headers) + 1
        names = verdict.alertnames
        if verdict.retry_reason is not None:
            if attempts >= self.retry_max_attempts:
                return await self._dead_letter(message, "retries_exhausted", verdict.retry_reason, attempts, names)
            queue = await self.publisher.retry(message, attempts, verdict.retry_reason, names)
            self.metrics.retry("publish_failed")
            log.info("message %s: attempt %d failed, retrying through %s", message.message_id, attempts, queue)
            return Settlement.RETRY.value, {"message": Settlement.RETRY, "attempt": attempts, "queue": queue}
        if verdict.invalid is not None:
            error = str(verdict.invalid)
            label, fate = await self._dead_letter(message, verdict.invalid.reason, error, attempts, names)
            self.trail.write({"message_id": message.message_id, "action": Action.INVALID, "error": error, **fate})
            return label, fate
        if verdict.busy:
            # Another replica holds these alerts' claims; not a failure, so no attempt is counted.
            error = f"another replica is publishing {', '.join(verdict.busy)}"
            queue = await self.publisher.retry(message, attempts - 1, error, names, reason="busy")
            self.metrics.retry("busy")
            return Settlement.BUSY.value, {"message": Settlement.BUSY, "queue": queue}
        if verdict.failed:
            error = f"handling failed for {'; '.join(verdict.failed)}"
            return await self._dead_letter(message, "alert_error", error, attempts, names)
        if verdict.undecided:
            error = f"no selector decided for {', '.join(verdict.undecided)}"
            return await self._dead_letter(message, "no_decision", error, attempts, names)
        return Settlement.PROCESSED.value, {}

    async def _dead_letter(
        self, message: AbstractIncomingMessage, reason: str, error: str, attempts: int, names: list[str]
    ) -> tuple[str, dict[str, Any]]:
        await self.publisher.dead_letter(message, reason, error, attempts, names)
        self.metrics.dead_letter(reason)
        log.warning("message %s dead-lettered: %s: %s", message.message_id, reason, error)
        return reason, {"message": Settlement.DEAD_LETTERED, "dead_letter_reason": reason}


async def _requeue(message: AbstractIncomingMessage) -> None:
    try:
        await message.nack(requeue=True)
    except Exception:  # isolation point: on a closed channel the broker requeues it anyway
        log.warning("could not nack message %s; the broker will redeliver it", message.message_id)
