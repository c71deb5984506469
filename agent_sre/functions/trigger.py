"""A trigger as a function receives it: decoded like every inbound event, then checked again.

The worker validated the decision before publishing it, but anyone who can publish to the
exchange can publish a trigger: the function re-checks the catalog (the function exists, each
parameter is what the alert's labels give and matches its pattern, no denied namespace) itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import CatalogError, InputError
from ..schemas.alert import Alert
from ..schemas.catalog import Catalog
from ..schemas.cloudevent import decode_event, event_data, parse_time
from ..schemas.decision import Proposal

TRIGGER_TYPE = "io.homelab.agent-sre.lambda.trigger"


class Suggestion(BaseModel):
    """What a selector proposed that fell short, as an escalation's trigger carries it (worker's
    `_escalation`): for the human the escalation reaches, never acted on."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    lambda_function: str
    parameters: dict[str, str] = Field(default_factory=dict)
    confidence: float = 0.0
    selector: str = ""
    why_not: str = ""


class TriggerData(BaseModel):
    """The data of a trigger, as agent_sre.worker.publisher.build_trigger writes it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    lambda_function: str = Field(min_length=1, max_length=100)
    parameters: dict[str, str] = Field(default_factory=dict)
    alert: Alert
    correlation_id: str = Field(min_length=1, max_length=200)
    triggered_by: str | None = None
    confidence: float = 0.0
    reasoning: str = ""
    escalation: str | None = None  # why the chain escalated by itself (undecided, unconfirmed, …)
    suggestions: list[Suggestion] = Field(default_factory=list)


@dataclass(frozen=True)
class Trigger:
    id: str
    data: TriggerData
    trace: dict[str, str] = field(default_factory=dict)  # traceparent / tracestate, carried to the result
    time: datetime | None = None  # when the worker published it (the `time` attribute)

    @property
    def function(self) -> str:
        return self.data.lambda_function

    @property
    def correlation_id(self) -> str:
        return self.data.correlation_id

    @property
    def parameters(self) -> dict[str, str]:
        return self.data.parameters


def read_trigger(body: bytes, headers: Mapping[str, Any] | None, *, content_type: str | None = None,
                 message_id: str | None = None, max_bytes: int = 1_048_576) -> Trigger:
    """One delivery to a Trigger; InputError (with its reason) when it is no well-formed trigger."""
    event = decode_event(body, headers, content_type=content_type, message_id=message_id, max_bytes=max_bytes)
    if event.type != TRIGGER_TYPE:
        raise InputError("unsupported_type", f"event type {event.type!r} is not {TRIGGER_TYPE}")
    data = event_data(TriggerData, event.data, reason="invalid_trigger", what="a trigger",
                      expected='{"lambda_function": "...", "parameters": {...}, "alert": {...}, "correlation_id": "..."}')
    for attribute, value in (("correlationid", data.correlation_id), ("subject", data.lambda_function)):
        if event.attributes.get(attribute, value) != value:
            raise InputError("invalid_trigger", f"the {attribute} attribute does not match the trigger's data")
    published = parse_time(event.attributes["time"]) if event.attributes.get("time") else None
    return Trigger(id=event.id, data=data, trace=event.trace, time=published)


def check_trigger(trigger: Trigger, catalog: Catalog, denied_namespaces: set[str]) -> None:
    """CatalogError unless the catalog would decide exactly these parameters for this alert."""
    if not trigger.data.alert.firing:
        raise CatalogError("the trigger's alert is resolved")
    proposal = Proposal(lambda_function=trigger.function, parameters=trigger.parameters, confidence=1.0)
    expected = catalog.validate_proposal(proposal, trigger.data.alert, denied_namespaces)
    if expected != trigger.parameters:
        missing = sorted(set(expected) - set(trigger.parameters))
        raise CatalogError(f"{trigger.function}: the trigger leaves out parameters the alert gives: {missing}")
