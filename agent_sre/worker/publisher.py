"""Everything the worker publishes, each publish confirmed by the broker or raised as TransientError.

- triggers (and proposals, approval requests): binary-mode CloudEvents with bare header names,
  to the output exchange; an approval request's timer, to the delay queue for its TTL;
- retries: a copy of the failed message, to the delay queue for its attempt;
- dead letters: a copy with the reason, to `<input queue>.dlq`;
- events taken in over HTTP, to the input exchange (or straight to the DLQ when unreadable).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

from ..errors import TransientError
from ..schemas.alert import Alert
from ..schemas.cloudevent import trigger_headers
from ..schemas.decision import Decision
from ..schemas.events import (  # noqa: F401 (TRIGGER_TYPE, PROPOSED_TYPE re-exported)
    APPROVAL_DENIED_TYPE,
    APPROVAL_EXPIRED_TYPE,
    APPROVAL_GRANTED_TYPE,
    APPROVAL_REQUESTED_TYPE,
    PROPOSED_TYPE,
    TRIGGER_TYPE,
)
from ..schemas.signing import SIGNATURE_EXTENSION, answer_status, sign
from ..settings import Settings
from .connection import publish_confirmed
from .deadletter import failed_copy
from .topology import Topology, delay_queue_name, dlq_name, retry_delays

TRIGGER_SOURCE = "/agent-sre/remediation"
APPROVALS_SOURCE = "/agent-sre/approvals"
_TRIGGER_NAMESPACE = uuid.UUID("0c7d7f55-3a8e-4f0e-9d7b-6a2f1c9e4b21")


class Kind(str, Enum):
    """What an event about a decision is: its CloudEvent type. Only a trigger makes a function act."""

    TRIGGER = TRIGGER_TYPE
    PROPOSED = PROPOSED_TYPE  # shadow mode: what would have been triggered
    APPROVAL_REQUESTED = APPROVAL_REQUESTED_TYPE  # waits for a human (agent_sre.worker.approvals)


def trigger_id(correlation_id: str, function: str, kind: Kind = Kind.TRIGGER) -> str:
    """Stable for one alert occurrence, function and kind, so downstream consumers can deduplicate.
    A proposal or an approval request has an id of its own: never taken for the trigger."""
    suffix = {Kind.TRIGGER: "", Kind.PROPOSED: "/proposed", Kind.APPROVAL_REQUESTED: "/approval"}[kind]
    return str(uuid.uuid5(_TRIGGER_NAMESPACE, f"{correlation_id}/{function}{suffix}"))


def build_trigger(
    alert: Alert, decision: Decision, kind: Kind = Kind.TRIGGER, extra: Mapping[str, Any] | None = None,
    trace: Mapping[str, str] | None = None,
) -> aio_pika.Message:
    """The CloudEvent for a decided alert, in Knative broker binary mode: the trigger, or the same
    event as a proposal (shadow mode) or an approval request, which no function's filter takes.
    `extra` goes into the data (`approved_by`, or a request's `phases` and `expires_at`); `trace`
    (W3C `traceparent`/`tracestate`) into the headers, as the Knative broker carries them."""
    if decision.lambda_function is None:
        raise ValueError("only a decided alert has a trigger")
    event_id = trigger_id(alert.correlation_id, decision.lambda_function, kind)
    headers = trigger_headers(
        {
            "specversion": "1.0",
            "id": event_id,
            "type": kind.value,
            "source": TRIGGER_SOURCE,
            "subject": decision.lambda_function,
            "datacontenttype": "application/json",
            "correlationid": alert.correlation_id,
        }
    )
    headers.update(trace or {})
    data = {
        "lambda_function": decision.lambda_function,
        "parameters": decision.parameters,
        "alert": alert.model_dump(mode="json", exclude_none=True),
        "triggered_by": decision.method,
        "correlation_id": alert.correlation_id,
        "confidence": decision.confidence,
        "reasoning": decision.reasoning,
        **_escalation(decision),
        **(extra or {}),
    }
    return aio_pika.Message(
        body=orjson.dumps(data),
        headers=headers,
        content_type="application/json",
        message_id=event_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def _escalation(decision: Decision) -> dict[str, Any]:
    """Why the chain escalated (`undecided`, `unconfirmed`, `disagreement`) and what the selectors
    thought, so that the human it reaches sees it; nothing for a selector's own choice."""
    if decision.escalation is None:
        return {}
    return {"escalation": decision.escalation.value,
            "suggestions": [s.model_dump(mode="json") for s in decision.suggestions]}


def approval_timer(correlation_id: str) -> aio_pika.Message:
    """The worker's own `approval.expired` event for one request, parked until the request expires."""
    event_id = str(uuid.uuid5(_TRIGGER_NAMESPACE, f"{correlation_id}/approval-expiry"))
    headers = trigger_headers({"specversion": "1.0", "id": event_id, "type": APPROVAL_EXPIRED_TYPE,
                               "source": APPROVALS_SOURCE, "datacontenttype": "application/json"})
    return aio_pika.Message(
        body=orjson.dumps({"correlation_id": correlation_id}),
        headers=headers,
        content_type="application/json",
        message_id=event_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def approval_answer(correlation_id: str, approved: bool, by: str, key: bytes | None = None) -> tuple[bytes, dict[str, str]]:
    """A person's answer, as `POST /approvals/{id}` and `agent-sre approvals` put it on the input exchange;
    signed with AGENT_SRE_RESULT_KEY when one is set (agent_sre.worker.result_auth)."""
    data = {"correlation_id": correlation_id, "by": by}
    attributes = {"specversion": "1.0", "id": str(uuid.uuid4()),
                  "type": APPROVAL_GRANTED_TYPE if approved else APPROVAL_DENIED_TYPE,
                  "source": APPROVALS_SOURCE, "datacontenttype": "application/json"}
    if key is not None:
        attributes[SIGNATURE_EXTENSION] = sign(key, correlation_id, answer_status(approved), data)
    return orjson.dumps(data), trigger_headers(attributes)


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

    async def trigger(
        self, alert: Alert, decision: Decision, kind: Kind = Kind.TRIGGER, extra: Mapping[str, Any] | None = None,
        trace: Mapping[str, str] | None = None,
    ) -> str:
        """Publish the trigger (or a proposal, or an approval request) and return its event id once
        the broker confirmed it. Only a trigger is `mandatory`: that nothing is bound to take
        proposals or requests is no failure, and the audit record holds them all the same."""
        message = build_trigger(alert, decision, kind, extra, trace)
        mandatory = self.settings.output_mandatory and kind is Kind.TRIGGER
        await self._publish(self.topology.output_exchange, message, "", mandatory)
        return message.message_id or ""

    async def approval_timer(self, correlation_id: str) -> None:
        """Park the request's expiry in the delay queue for AGENT_SRE_APPROVAL_TTL_S."""
        queue = delay_queue_name(self.settings.input_queue, self.settings.approval_ttl_s)
        await self._publish(self.topology.default_exchange, approval_timer(correlation_id), queue, True)

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
