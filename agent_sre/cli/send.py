"""`agent-sre send`: publish one alert event to the input exchange, for trying the stack."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import aio_pika
import orjson
import typer

from ..errors import AgentSreError, TransientError
from ..logs import mask_secrets
from ..settings import DEFAULT_EVENT_TYPE, Settings
from ..worker.connection import connect, publish_confirmed
from ..worker.topology import declare
from .common import fail, load_settings

SEND_SOURCE = "/agent-sre/send"
_CONFIRM_TIMEOUT_S = 30.0


class Encoding(str, Enum):
    knative = "knative"  # bare header names, as the Knative RabbitMQ broker writes them
    ce = "ce"  # ce- prefixed headers (the CloudEvents SDK's rabbitmq binding)
    amqp = "amqp"  # the AMQP binding's cloudEvents_ prefix
    amqp_colon = "amqp-colon"  # its older cloudEvents: spelling
    structured = "structured"  # attributes and data in one application/cloudevents+json body


_PREFIXES = {Encoding.knative: "", Encoding.ce: "ce-", Encoding.amqp: "cloudEvents_", Encoding.amqp_colon: "cloudEvents:"}


def encode_event(
    data: Any, *, event_type: str, encoding: Encoding, event_id: str | None = None, source: str = SEND_SOURCE
) -> aio_pika.Message:
    """One CloudEvent carrying `data`, as an AMQP message in the given encoding."""
    event_id = event_id or str(uuid.uuid4())
    attributes = {
        "specversion": "1.0",
        "id": event_id,
        "type": event_type,
        "source": source,
        "time": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
    }
    if encoding is Encoding.structured:
        body = orjson.dumps({**attributes, "datacontenttype": "application/json", "data": data})
        return event_message(body, {}, "application/cloudevents+json", event_id)
    prefix = _PREFIXES[encoding]
    headers: dict[str, Any] = {prefix + name: value for name, value in attributes.items()}
    headers["content-type" if encoding is Encoding.knative else prefix + "datacontenttype"] = "application/json"
    return event_message(orjson.dumps(data), headers, "application/json", event_id)


def build_alert(
    alertname: str | None,
    labels: dict[str, str],
    annotations: dict[str, str],
    file: Path | None = None,
    resolved: bool = False,
) -> dict[str, Any]:
    """An Alertmanager alert (or the webhook read from `file`), firing unless `resolved`."""
    if file is not None:
        payload = orjson.loads(file.read_bytes())
    else:
        if not alertname:
            raise ValueError("give an alert name (or --file with a JSON alert or webhook)")
        payload = {
            "labels": {"alertname": alertname, **labels},
            "annotations": annotations,
            "startsAt": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            "endsAt": "0001-01-01T00:00:00Z",
        }
    if resolved:
        ended = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        for alert in payload.get("alerts", [payload]) if isinstance(payload, dict) else []:
            alert.update(status="resolved", endsAt=ended)
        if isinstance(payload, dict) and "alerts" in payload:
            payload["status"] = "resolved"
    return payload


async def publish_event(settings: Settings, message: aio_pika.Message) -> None:
    """Declare the worker's topology and publish to the input exchange, confirmed (raises if not)."""
    connection = await connect(settings, "send", robust=False)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        topology = await declare(channel, settings)
        await publish_confirmed(topology.input_exchange, message, "", True, _CONFIRM_TIMEOUT_S)


def send(
    alertname: Annotated[str | None, typer.Argument(help="labels.alertname of the alert to send.")] = None,
    label: Annotated[list[str] | None, typer.Option("--label", "-l", help="A label as k=v; repeatable.")] = None,
    annotation: Annotated[list[str] | None, typer.Option("--annotation", "-a", help="An annotation as k=v; repeatable.")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="A JSON alert or Alertmanager webhook to send.")] = None,
    resolved: Annotated[bool, typer.Option("--resolved", help="Send the alert as resolved.")] = False,
    event_type: Annotated[str, typer.Option("--type", help="The CloudEvent type.")] = DEFAULT_EVENT_TYPE,
    encoding: Annotated[Encoding, typer.Option(help="How the CloudEvent is put on the wire.")] = Encoding.knative,
) -> None:
    """Publish one alert event (binary or structured CloudEvent) to the input exchange."""
    settings = load_settings()
    try:
        payload = build_alert(alertname, _pairs(label, "--label"), _pairs(annotation, "--annotation"), file, resolved)
    except (OSError, orjson.JSONDecodeError, ValueError) as exc:
        fail(str(exc))
    message = encode_event(payload, event_type=event_type, encoding=encoding)
    try:
        asyncio.run(publish_event(settings, message))
    except TransientError as exc:  # broker down, or the publish not confirmed: try again later
        fail(str(exc), 1)
    except AgentSreError as exc:
        fail(str(exc))
    except (aio_pika.exceptions.AMQPError, ConnectionError) as exc:  # declaring the topology failed
        fail(f"the broker did not take the event: {type(exc).__name__}: {mask_secrets(str(exc))}", 1)
    typer.echo(orjson.dumps({"sent": message.message_id, "exchange": settings.input_exchange, "encoding": encoding.value}).decode())


def _pairs(items: list[str] | None, option: str) -> dict[str, str]:
    pairs = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"{option} {item!r}: write it as key=value")
        pairs[key] = value
    return pairs


def event_message(body: bytes, headers: dict[str, Any], content_type: str, event_id: str) -> aio_pika.Message:
    return aio_pika.Message(
        body=body,
        headers=headers,
        content_type=content_type,
        message_id=event_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )
