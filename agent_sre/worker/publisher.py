"""Everything the worker publishes, each publish confirmed by the broker or raised as TransientError.

- triggers: binary-mode CloudEvents with bare header names, to the output exchange;
- retries: a copy of the failed message, to the delay queue for its attempt;
- dead letters: a copy with the reason, to `<input queue>.dlq`;
- events taken in over HTTP, to the input exchange (or straight to the DLQ when unreadable).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

from ..schemas.alert import Alert
from ..schemas.cloudevent import trigger_headers
from ..schemas.decision import Decision
from ..settings import Settings
from .connection import publish_confirmed
from .deadletter import failed_copy
from .topology import Topology, delay_queue_name, dlq_name, retry_delays

TRIGGER_TYPE = "io.homelab.agent-sre.lambda.trigger"
PROPOSED_TYPE = "io.homelab.agent-sre.lambda.proposed"  # shadow mode: what would have been triggered
TRIGGER_SOURCE = "/agent-sre/remediation"
_TRIGGER_NAMESPACE = uuid.UUID("0c7d7f55-3a8e-4f0e-9d7b-6a2f1c9e4b21")


def trigger_id(correlation_id: str, function: str, proposed: bool = False) -> str:
    """Stable for one alert occurrence and function, so downstream consumers can deduplicate. A
    proposal has an id of its own: a consumer that deduplicates never takes it for the trigger."""
    name = f"{correlation_id}/{function}" + ("/proposed" if proposed else "")
    return str(uuid.uuid5(_TRIGGER_NAMESPACE, name))


def build_trigger(alert: Alert, decision: Decision, proposed: bool = False) -> aio_pika.Message:
    """The trigger CloudEvent for a decided alert, in Knative broker binary mode; with `proposed`,
    the same event as a proposal (shadow mode), which no function's filter takes."""
    if decision.lambda_function is None:
        raise ValueError("only a decided alert has a trigger")
    event_id = trigger_id(alert.correlation_id, decision.lambda_function, proposed)
    headers = trigger_headers(
        {
            "specversion": "1.0",
            "id": event_id,
            "type": PROPOSED_TYPE if proposed else TRIGGER_TYPE,
            "source": TRIGGER_SOURCE,
            "subject": decision.lambda_function,
            "datacontenttype": "application/json",
            "correlationid": alert.correlation_id,
        }
    )
    data = {
        "lambda_function": decision.lambda_function,
        "parameters": decision.parameters,
        "alert": alert.model_dump(mode="json", exclude_none=True),
        "triggered_by": decision.method,
        "correlation_id": alert.correlation_id,
        "confidence": decision.confidence,
        "reasoning": decision.reasoning,
    }
    return aio_pika.Message(
        body=orjson.dumps(data),
        headers=headers,
        content_type="application/json",
        message_id=event_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


@dataclass(frozen=True)
class RawMessage:
    """A body and headers that never were an AMQP delivery (an HTTP request), shaped for failed_copy."""

    body: bytes
    headers: dict[str, Any]
    content_type: str | None = None
    message_id: str | None = None
    content_encoding: str | None = None
    correlation_id: str | None = None
    timestamp: datetime | None = None
    type: str | None = None
    app_id: str | None = None


class Publisher:
    def __init__(self, topology: Topology, settings: Settings, confirm_timeout_s: float = 30.0) -> None:
        self.topology = topology
        self.settings = settings
        self.confirm_timeout_s = confirm_timeout_s
        self._dead_letter_queue = dlq_name(settings.input_queue)

    async def trigger(self, alert: Alert, decision: Decision, proposed: bool = False) -> str:
        """Publish the trigger (or, `proposed`, the proposal) and return its event id once the broker
        confirmed it. A proposal is never mandatory: that nothing is bound to take proposals is no
        failure, and the audit record holds it all the same."""
        message = build_trigger(alert, decision, proposed)
        mandatory = self.settings.output_mandatory and not proposed
        await self._publish(self.topology.output_exchange, message, "", mandatory)
        return message.message_id or ""

    async def retry(
        self, message: AbstractIncomingMessage, attempts: int, error: str, alertnames: list[str], reason: str = "publish_failed"
    ) -> str:
        """Park a copy in the delay queue for this attempt (the first one for attempt 0, a wait that
        counts no failure); it comes back to the input queue later."""
        delays = retry_delays(self.settings)
        if not delays:
            raise TransientError("no delay queue to park the message in (AGENT_SRE_RETRY_MAX_ATTEMPTS=1)")
        queue = delay_queue_name(self.settings.input_queue, delays[min(max(attempts, 1), len(delays)) - 1])
        copy = failed_copy(message, reason=reason, error=error, attempts=attempts, alertnames=alertnames)
        await self._publish(self.topology.default_exchange, copy, queue, True)
        return queue

    async def dead_letter(
        self, message: AbstractIncomingMessage, reason: str, error: str, attempts: int, alertnames: list[str]
    ) -> None:
        copy = failed_copy(message, reason=reason, error=error, attempts=attempts, alertnames=alertnames)
        await self._publish(self.topology.default_exchange, copy, self._dead_letter_queue, True)

    async def publish_input(self, body: bytes, headers: Mapping[str, Any], content_type: str, message_id: str) -> None:
        """An event received over HTTP, into the input exchange as the Knative broker would write it."""
        message = aio_pika.Message(
            body=body,
            headers=dict(headers),
            content_type=content_type,
            message_id=message_id,
            timestamp=datetime.now(timezone.utc),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self._publish(self.topology.input_exchange, message, "", True)

    async def dead_letter_raw(self, body: bytes, headers: Mapping[str, Any], reason: str, error: str) -> None:
        """A body that could not even be read as an event, straight to the DLQ with the reason."""
        raw = RawMessage(body=body, headers=dict(headers), content_type=str(headers.get("content-type") or "") or None)
        copy = failed_copy(raw, reason=reason, error=error, attempts=1)  # type: ignore[arg-type]
        await self._publish(self.topology.default_exchange, copy, self._dead_letter_queue, True)

    async def _publish(self, exchange: AbstractExchange, message: aio_pika.Message, routing_key: str, mandatory: bool) -> None:
        await publish_confirmed(exchange, message, routing_key, mandatory, self.confirm_timeout_s)
