"""The one `io.homelab.agent-sre.lambda.result` a trigger ends in, as the worker's outcomes read it.

Binary mode with bare header names (as the Knative broker writes events), correlated by the
trigger's `correlationid`, carrying its `traceparent`/`tracestate`, and signed when a key is set.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..schemas.cloudevent import trigger_headers
from ..schemas.signing import SIGNATURE_EXTENSION, canonical, sign
from ..settings import RESULT_TYPE
from .trigger import Trigger

RESULT_SOURCE = "/agent-sre/functions"
_MESSAGE_LIMIT = 4000  # LambdaResult.message's bound in the worker
_RESULT_NAMESPACE = uuid.UUID("5b0f0f8e-7c1e-4c53-9a55-0d1f3b8c6e27")


class Status(str, Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Result:
    status: Status
    message: str
    actions: list[str] = field(default_factory=list)  # what was done, in words
    report: dict[str, Any] | None = None


def result_data(trigger: Trigger, result: Result, dry_run: bool) -> dict[str, Any]:
    message = result.message if len(result.message) <= _MESSAGE_LIMIT else result.message[: _MESSAGE_LIMIT - 1] + "…"
    data: dict[str, Any] = {
        "correlation_id": trigger.correlation_id,
        "status": result.status.value,
        "message": message,
        "function": trigger.function,
        "trigger_id": trigger.id,
        "actions": result.actions,
        "dry_run": dry_run,
    }
    if result.report is not None:
        data["report"] = result.report
    return data


def result_event(trigger: Trigger, result: Result, *, dry_run: bool, key: bytes | None) -> tuple[bytes, dict[str, str]]:
    """The body and the bare CloudEvent headers of the result of `trigger`."""
    data = result_data(trigger, result, dry_run)
    attributes: dict[str, Any] = {
        "id": str(uuid.uuid5(_RESULT_NAMESPACE, trigger.id)),  # a redelivered result is the same event
        "type": RESULT_TYPE,
        "source": f"{RESULT_SOURCE}/{trigger.function}",
        "subject": trigger.function,
        "datacontenttype": "application/json",
        "correlationid": trigger.correlation_id,
    }
    if key is not None:
        attributes[SIGNATURE_EXTENSION] = sign(key, trigger.correlation_id, result.status.value, data)
    headers = trigger_headers(attributes)
    headers.update(trigger.trace)
    return canonical(data), headers
