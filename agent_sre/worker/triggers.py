"""Sending what a decision leads to: its event (trigger, proposal or approval request), in a span
of its own, and the Alertmanager silence that keeps its alert quiet while the remediation runs."""

from __future__ import annotations

from typing import Any

from .. import tracing
from ..schemas.alert import Alert
from ..schemas.cloudevent import InboundEvent
from ..schemas.decision import Decision
from .publisher import Kind, Publisher
from .silences import Silences


class Triggers:
    """The publisher, and the silences (None: no Alertmanager, or no cooldown for a silence to last)."""

    def __init__(self, publisher: Publisher, silences: Silences | None, silence_s: float) -> None:
        self.publisher = publisher
        self.silences = silences if silence_s > 0 else None  # a silence lasts the cooldown
        self.silence_s = silence_s

    async def publish(
        self, event: InboundEvent, alert: Alert, decision: Decision, kind: Kind = Kind.TRIGGER,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Publish an event about this decision, in a span of its own that the event names as its
        parent (or, tracing off, with the input's own trace context)."""
        with tracing.span(f"publish {decision.lambda_function}", kind=tracing.PRODUCER,
                          correlation_id=alert.correlation_id, event_type=kind.value):
            return await self.publisher.trigger(alert, decision, kind, extra, tracing.outbound(event.trace))

    async def silence(self, alert: Alert, function: str, trigger_id: str) -> None:
        """While its remediation runs (the cooldown), the alert's repeats page nobody."""
        if self.silences is not None:
            await self.silences.silence(alert, function, trigger_id, self.silence_s)

    async def unsilence(self, correlation_id: str, alertname: str | None = None) -> None:
        """A human must hear of the alert again (it resolved, or its remediation failed)."""
        if self.silences is not None:
            await self.silences.expire(correlation_id, alertname)
