"""`agent-sre watch`: bind a queue to the output exchange and print each trigger as it arrives.

The worker publishes triggers `mandatory`, so with nothing bound to the output exchange (a fresh
broker) every trigger is returned, retried and finally dead-lettered. Binding a queue here is
what makes the broker demo end in a printed trigger instead of the DLQ.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

import aio_pika
import orjson
import typer
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractQueue

from ..errors import AgentSreError, TransientError
from ..logs import mask_secrets
from ..settings import Settings
from ..worker.connection import connect
from ..worker.publisher import Kind
from ..worker.topology import declare
from .common import fail, load_settings

# Unacked deliveries in hand; any left when watch stops go back to the queue, none is lost.
_PREFETCH = 16


_SHOWN = {kind.value for kind in Kind}  # triggers, proposals, approval requests; no other event
_PREFIXES = {Kind.PROPOSED.value: ["proposed:"], Kind.APPROVAL_REQUESTED.value: ["approval", "requested:"]}


def default_queue(settings: Settings) -> str:
    return f"{settings.output_exchange}.watch"


def format_trigger(body: bytes, event_type: object = None) -> str:
    """One line: function, parameters, alert name, confidence, selector and correlation id (and for an
    escalation the chain reached itself, why and what the selectors suggested); a
    proposal (shadow mode, nothing acted) starts with `proposed:`, an approval request (nothing
    acted yet) with `approval requested:`."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        return f"(not a trigger: {len(body)} bytes that are not a JSON object)"
    alert = data.get("alert") if isinstance(data.get("alert"), dict) else {}
    labels = alert.get("labels") if isinstance(alert.get("labels"), dict) else {}
    return " ".join(
        _PREFIXES.get(str(event_type), [])
        + [
            _text(data.get("lambda_function")),
            orjson.dumps(data.get("parameters") or {}).decode(),
            f"alertname={_text(labels.get('alertname'))}",
            f"confidence={_text(data.get('confidence'))}",
            f"triggered_by={_text(data.get('triggered_by'))}",
            f"correlation_id={_text(data.get('correlation_id'))}",
        ]
        + _why_escalated(data)
    )


def _why_escalated(data: dict[str, Any]) -> list[str]:
    """`escalation=undecided suggested=pod-restart@trm:0.81,...` for an escalation the chain reached itself."""
    if not data.get("escalation"):
        return []
    suggestions = data.get("suggestions") if isinstance(data.get("suggestions"), list) else []
    suggested = ",".join(
        f"{_text(s.get('lambda_function'))}@{_text(s.get('selector'))}:{_text(s.get('confidence'))}"
        for s in suggestions if isinstance(s, dict)
    )
    return [f"escalation={_text(data.get('escalation'))}"] + ([f"suggested={suggested}"] if suggested else [])


async def watch_triggers(
    settings: Settings,
    show: Callable[[str], None],
    *,
    queue_name: str | None = None,
    temporary: bool = False,
    count: int | None = None,
    timeout_s: float | None = None,
    as_json: bool = False,
    on_bound: Callable[[str], None] | None = None,
) -> bool:
    """Show triggers until `count` arrived (True) or `timeout_s` passed without one (False).

    Without either it runs until cancelled. `on_bound` gets the queue's name once the queue is
    bound: from then on every trigger is routable.
    """
    connection = await connect(settings, "watch", robust=False)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=_PREFETCH)
        topology = await declare(channel, settings)
        queue = await _bound_queue(channel, topology.output_exchange, settings, queue_name, temporary)
        if on_bound is not None:
            on_bound(queue.name)
        inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        await queue.consume(inbox.put)
        lost = asyncio.ensure_future(connection.closed())
        seen = 0
        try:
            while count is None or seen < count:
                message = await _next(inbox, lost, timeout_s)
                if message is None:
                    return False
                event_type = (message.headers or {}).get("type")
                if event_type not in _SHOWN:
                    # A Knative broker's exchange carries every event, the alerts among them.
                    await message.ack()
                    continue
                show(message.body.decode("utf-8", errors="replace") if as_json else format_trigger(message.body, event_type))
                # Acked only once shown: a trigger taken but never printed stays in the queue.
                await message.ack()
                seen += 1
        finally:
            lost.cancel()
    return True


async def _bound_queue(
    channel: AbstractChannel, exchange: AbstractExchange, settings: Settings, name: str | None, temporary: bool
) -> AbstractQueue:
    if temporary:
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    else:
        queue = await channel.declare_queue(name or default_queue(settings), durable=True)
    # Headers exchange (the default): a binding with no arguments matches every message, as
    # x-match defaults to `all` and all of no conditions hold. (`x-match: any` with no
    # conditions matches none.) Topic needs `#`; direct and fanout take the worker's key "".
    routing_key = "#" if settings.output_exchange_type == "topic" else ""
    await queue.bind(exchange, routing_key=routing_key, arguments=None)
    return queue


async def _next(
    inbox: asyncio.Queue[AbstractIncomingMessage], lost: asyncio.Future[Any], timeout_s: float | None
) -> AbstractIncomingMessage | None:
    """The next delivery; None when `timeout_s` passes first; raises if the connection is lost."""
    getter = asyncio.ensure_future(inbox.get())
    done, _ = await asyncio.wait({getter, lost}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    if lost in done:
        raise TransientError("the broker closed the connection")
    return None


def watch(
    queue: Annotated[
        str | None,
        typer.Option("--queue", help="The durable queue to bind (default: <AGENT_SRE_OUTPUT_EXCHANGE>.watch)."),
    ] = None,
    temporary: Annotated[
        bool, typer.Option("--temporary", help="Use an exclusive queue that is deleted when watch exits.")
    ] = False,
    count: Annotated[int | None, typer.Option("--count", min=1, help="Exit after this many triggers.")] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Exit with code 1 when this many seconds pass without a trigger.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each trigger's JSON body instead of a summary line.")
    ] = False,
) -> None:
    """Print each trigger the worker publishes, one line per trigger, until Ctrl-C.

    While watch's queue is bound to the output exchange, triggers are routable and are not dead-lettered.
    (The worker publishes them mandatory: with no queue bound, each is returned, retried, then dead-lettered.)

    The default queue is durable and stays bound after watch exits: triggers collect in it for the next watch.
    Delete the queue to undo that, or use --temporary for a queue that goes away with watch.
    """
    if queue is not None and temporary:
        fail("give --queue or --temporary, not both")
    if timeout is not None and timeout <= 0:
        fail("--timeout must be more than 0 seconds")
    settings = load_settings()

    def bound(name: str) -> None:
        typer.echo(f"watching {settings.output_exchange!r} through queue {name!r}; Ctrl-C stops", err=True)

    try:
        done = asyncio.run(
            watch_triggers(
                settings, typer.echo, queue_name=queue, temporary=temporary, count=count, timeout_s=timeout,
                as_json=as_json, on_bound=bound,
            )
        )
    except KeyboardInterrupt:
        return  # asyncio.run has cancelled the watch and closed the connection: a clean stop
    except TransientError as exc:
        fail(str(exc), 1)
    except AgentSreError as exc:
        fail(str(exc))
    except (aio_pika.exceptions.AMQPError, ConnectionError) as exc:
        fail(f"the broker refused the watch queue: {type(exc).__name__}: {mask_secrets(str(exc))}", 1)
    if not done:
        fail(f"no trigger arrived for {timeout:g}s", 1)


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)
