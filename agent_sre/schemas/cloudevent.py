"""CloudEvents on the wire: every inbound encoding in, Knative-style binary mode out.

Inbound (see shared FORMATS.md), all normalised to one attribute dict:
- Knative broker binary mode: bare header names (`type`, `id`, `content-type`, ...);
- `ce-` prefixed headers (the SDK's rabbitmq binding, HTTP binary mode);
- the AMQP binding's `cloudEvents_` and `cloudEvents:` prefixes;
- structured mode: content type `application/cloudevents+json`, attributes in the body.

`decode_event` is the one inbound decoder: the HTTP ingress, the AMQP consumer, `dlq` and
`select` all go through it, so an event one path accepts no other path refuses.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar

import orjson
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.v1.event import CloudEvent
from pydantic import BaseModel, ValidationError

from ..errors import InputError

M = TypeVar("M", bound=BaseModel)

STRUCTURED_CONTENT_TYPE = "application/cloudevents"
_PREFIXES = ("ce-", "cloudevents_", "cloudevents:")
_SKIPPED = ("traceparent", "tracestate")
_CORE_ATTRIBUTES = frozenset(
    {"id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject", "time"}
)
# The spec's attribute names: lower-case ASCII letters and digits, at most 20 of them.
_EXTENSION_NAME = re.compile(r"[a-z0-9]{1,20}")
# fromisoformat alone would also take a bare date, a missing offset or `20261121T100000`.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", re.IGNORECASE)


@dataclass(frozen=True)
class InboundEvent:
    attributes: dict[str, str]
    data: Any
    # W3C trace context: the bare `traceparent`/`tracestate` headers (Knative's broker), else the
    # CloudEvents distributed-tracing extension attributes of the same names.
    trace: dict[str, str] = field(default_factory=dict)

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
    attributes.setdefault("specversion", "1.0")
    if not attributes.get("id"):
        attributes["id"] = message_id or hashlib.sha256(body).hexdigest()[:32]
    check_attributes(attributes)
    return InboundEvent(attributes=attributes, data=data, trace=_trace_context(headers, attributes))


def event_data(model: type[M], data: Any, *, reason: str, what: str, expected: str) -> M:
    """An event's data as `model`; InputError(`reason`) naming each problem and the shape `expected`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'data'}: {e['msg']}" for e in exc.errors())
        raise InputError(reason, f"not {what} ({problems}); expected {expected}") from exc


def _trace_context(headers: Mapping[str, Any] | None, attributes: Mapping[str, str]) -> dict[str, str]:
    found = {name.lower(): value for name, value in (headers or {}).items()
             if name.lower() in _SKIPPED and isinstance(value, (str, bytes))}
    if "traceparent" not in found and "traceparent" in attributes:
        found = {name: attributes[name] for name in _SKIPPED if name in attributes}
    return {name: value.decode(errors="replace") if isinstance(value, bytes) else value for name, value in found.items()}


def check_attributes(attributes: Mapping[str, str]) -> None:
    """CloudEvents 1.0 rules for normalised attributes; InputError("invalid_cloudevent") if broken.

    The clear messages come first (`_check_rules`, which `trigger_headers` applies to what we
    publish); the SDK's own validation last.
    """
    time = _check_rules(attributes)
    try:
        CloudEvent({**attributes, **({"time": time} if time else {})})
    except BaseCloudEventException as exc:
        raise InputError("invalid_cloudevent", f"not a valid CloudEvent: {exc}") from exc


def _check_rules(attributes: Mapping[str, str]) -> datetime | None:
    """Required attributes, the spec version, the time and the attribute names; the time parsed."""
    for name in ("id", "type", "source"):
        if not attributes.get(name):
            raise InputError("invalid_cloudevent", f"no CloudEvent {name}: set the `{name}` (or ce-{name}) header")
    if attributes["specversion"] != "1.0":
        raise InputError("invalid_cloudevent", f"specversion {attributes['specversion']!r} is not supported: send 1.0")
    time = parse_time(attributes["time"]) if "time" in attributes else None
    bad = sorted(name for name in attributes if name not in _CORE_ATTRIBUTES and not _EXTENSION_NAME.fullmatch(name))
    if bad:
        raise InputError(
            "invalid_cloudevent",
            f"{', '.join(map(repr, bad))} cannot be CloudEvent attribute names: use 1-20 lower-case letters or digits",
        )
    return time


def parse_time(text: str) -> datetime:
    """An RFC 3339 timestamp, as the `time` attribute must be; InputError otherwise."""
    time = _rfc3339(text)
    if time is None:
        raise InputError("invalid_cloudevent", f"time {text!r} is not an RFC 3339 timestamp such as 2026-11-21T10:00:01Z")
    return time


def trigger_headers(attributes: Mapping[str, Any]) -> dict[str, str]:
    """Bare CloudEvent header names, as the Knative broker writes them, so filtered Triggers match.

    `specversion` defaults to 1.0 and `time` to now. The attributes must pass the rules every
    inbound event passes (`check_attributes`), or ValueError: whatever we publish, our own
    ingress would take. (The SDK's object is not built: these are ours, once per trigger.)
    """
    attrs = {"specversion": "1.0", **attributes}
    time = attrs.get("time") or datetime.now(timezone.utc)
    attrs["time"] = time.isoformat().replace("+00:00", "Z") if isinstance(time, datetime) else time
    try:
        _check_rules(attrs)
    except InputError as exc:
        raise ValueError(f"invalid trigger attributes: {exc}") from exc
    return {"content-type" if name == "datacontenttype" else name: str(value) for name, value in attrs.items()}


def _rfc3339(text: str) -> datetime | None:
    if not _RFC3339.fullmatch(text):
        return None
    try:
        return datetime.fromisoformat(text.upper())
    except ValueError:  # the right shape but no such moment, e.g. month 13
        return None


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
        # An AMQP timestamp: seconds since the epoch, so UTC even when the client gave no zone.
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
    return str(value)
