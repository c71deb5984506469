"""CloudEvents on the wire: every inbound encoding in, Knative-style binary mode out.

Inbound (see shared FORMATS.md), all normalised to one attribute dict:
- Knative broker binary mode: bare header names (`type`, `id`, `content-type`, ...);
- `ce-` prefixed headers (the SDK's rabbitmq binding, HTTP binary mode);
- the AMQP binding's `cloudEvents_` and `cloudEvents:` prefixes;
- structured mode: content type `application/cloudevents+json`, attributes in the body.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.v1.event import CloudEvent

from ..errors import InputError

STRUCTURED_CONTENT_TYPE = "application/cloudevents"
_PREFIXES = ("ce-", "cloudevents_", "cloudevents:")
_SKIPPED = ("traceparent", "tracestate")


@dataclass(frozen=True)
class InboundEvent:
    attributes: dict[str, str]
    data: Any

    @property
    def type(self) -> str:
        return self.attributes["type"]

    @property
    def id(self) -> str:
        return self.attributes["id"]


def normalise_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """Lower-case the names, strip the CloudEvents prefixes, skip `x-*` and tracing headers."""
    attributes: dict[str, str] = {}
    for key, value in (headers or {}).items():
        name = key.lower()
        if value is None or name.startswith("x-") or name in _SKIPPED:
            continue  # an AMQP header set to null is no attribute (an `id` of "None" would be one)
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix) :]
                break
        if name == "content-type":
            name = "datacontenttype"
        attributes[name] = _header_text(value)
    return attributes


def decode_event(
    body: bytes,
    headers: Mapping[str, Any] | None,
    *,
    content_type: str | None = None,
    message_id: str | None = None,
    max_bytes: int,
) -> InboundEvent:
    """One AMQP message (or HTTP request) to an event; raises InputError with a dead-letter reason."""
    if len(body) > max_bytes:
        raise InputError("too_large", f"event is {len(body)} bytes, over the {max_bytes}-byte limit")
    attributes = normalise_headers(headers)
    content_type = content_type or attributes.get("datacontenttype", "")
    payload = _parse_json(body)
    if content_type.startswith(STRUCTURED_CONTENT_TYPE):
        if not isinstance(payload, dict):
            raise InputError("invalid_cloudevent", "a structured CloudEvent must be a JSON object")
        attributes.update(
            {k.lower(): _header_text(v) for k, v in payload.items() if k not in ("data", "data_base64") and v is not None}
        )
        data = _structured_data(payload)
    else:
        data = payload
    if not attributes.get("type"):
        raise InputError("invalid_cloudevent", "no CloudEvent type: set the `type` (or ce-type) header")
    attributes.setdefault("specversion", "1.0")
    if not attributes.get("id"):
        attributes["id"] = message_id or hashlib.sha256(body).hexdigest()[:32]
    return InboundEvent(attributes=attributes, data=data)


def trigger_headers(attributes: Mapping[str, Any]) -> dict[str, str]:
    """Bare CloudEvent header names, as the Knative broker writes them, so filtered Triggers match.

    The SDK validates the attributes (required ones present, extension names legal) first.
    """
    attrs = dict(attributes)
    attrs.setdefault("time", datetime.now(timezone.utc))
    try:
        event = CloudEvent(attrs)
    except BaseCloudEventException as exc:
        raise ValueError(f"invalid trigger attributes: {exc}") from exc
    headers: dict[str, str] = {}
    for name, value in event.get_attributes().items():
        if isinstance(value, datetime):
            value = value.isoformat().replace("+00:00", "Z")
        headers["content-type" if name == "datacontenttype" else name] = str(value)
    return headers


def _parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InputError("invalid_json", f"body is not JSON: {exc}") from exc


def _structured_data(payload: dict[str, Any]) -> Any:
    if "data_base64" in payload:
        try:
            return _parse_json(base64.b64decode(payload["data_base64"], validate=True))
        except (ValueError, TypeError) as exc:
            raise InputError("invalid_cloudevent", "data_base64 is not valid base64") from exc
    return payload.get("data")


def _header_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
