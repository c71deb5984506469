"""Dead-letter queue operations: browse, find, replay and purge, without losing a message.

One pass learns the queue's message count N, then takes up to N messages with basic.get and
holds every one unacked until the pass ends. A held message cannot be handed out again, so a
pass never sees one twice, and if the process dies mid-pass the broker requeues all of them.
Replay acks a dead letter only after the broker has confirmed its copy on the input exchange.
Everything not replayed or purged is requeued in order; as every pass takes the whole queue,
the indexes `list` prints stay valid for `show` until the queue changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from fnmatch import fnmatchcase
from typing import Any

import orjson
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
)
from aiormq.exceptions import AMQPChannelError

from ..errors import ConfigError, InputError, TransientError
from ..schemas.alert import parse_alerts
from ..schemas.cloudevent import decode_event, normalise_headers
from ..settings import Settings
from .deadletter import (
    ALERTNAMES,
    ATTEMPTS,
    BOOKKEEPING,
    FIRST_FAILURE,
    LAST_ERROR,
    LAST_FAILURE,
    REASON,
    REPLAYS,
    attempts_of,
    copy_message,
)
from .connection import connect, publish_confirmed
from .topology import Topology, declare, dlq_name

# A replay is a fresh start: drop our failure record and the broker's (x-death would otherwise
# make a later broker dead-letter look older than it is, and x-delivery-count belongs to the DLQ).
_REPLAY_DROPS = frozenset(BOOKKEEPING) | {"x-death", "x-delivery-count"}
_SETTLE_TIMEOUT_S = 5.0
# A replay the broker has not confirmed in this long is reported, and the dead letter stays.
_CONFIRM_TIMEOUT_S = 30.0
log = logging.getLogger(__name__)
_PROPERTIES = (
    "content_type", "content_encoding", "delivery_mode", "priority", "correlation_id", "reply_to",
    "expiration", "message_id", "timestamp", "type", "user_id", "app_id",
)


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter as read from the queue; `index` is its 1-based position in the pass."""

    index: int
    reason: str
    alertnames: tuple[str, ...]
    attempts: int
    replays: int
    first_failure: datetime | None
    last_failure: datetime | None
    last_error: str
    event_id: str | None
    event_type: str | None
    body_size: int
    headers: dict[str, Any] = field(repr=False)
    properties: dict[str, Any] = field(repr=False)
    body: bytes = field(repr=False)

    def age(self, now: datetime) -> timedelta | None:
        return now - self.last_failure if self.last_failure else None

    def summary(self, now: datetime) -> dict[str, Any]:
        """JSON-ready fields, without headers and body."""
        age = self.age(now)
        return {
            "index": self.index, "reason": self.reason, "alertnames": list(self.alertnames),
            "attempts": self.attempts, "replays": self.replays,
            "first_failure": self.first_failure.isoformat() if self.first_failure else None,
            "last_failure": self.last_failure.isoformat() if self.last_failure else None,
            "age_s": round(age.total_seconds(), 3) if age is not None else None,
            "last_error": self.last_error, "event_id": self.event_id, "event_type": self.event_type,
            "body_size": self.body_size,
        }


@dataclass(frozen=True)
class Selection:
    """Which dead letters an operation touches. Age is measured from the last failure; a dead
    letter of unknown age never matches an age filter, so a purge by age cannot over-reach."""

    reason: str | None = None
    alertname: str | None = None  # a shell-style pattern; a plain name matches exactly
    older_than: timedelta | None = None
    newer_than: timedelta | None = None
    limit: int | None = None

    @property
    def narrows(self) -> bool:
        return any(v is not None for v in (self.reason, self.alertname, self.older_than, self.newer_than))

    def matches(self, letter: DeadLetter, now: datetime) -> bool:
        if self.reason is not None and letter.reason != self.reason:
            return False
        if self.alertname is not None and not any(fnmatchcase(n, self.alertname) for n in letter.alertnames):
            return False
        age = letter.age(now)
        if self.older_than is not None and (age is None or age < self.older_than):
            return False
        return not (self.newer_than is not None and (age is None or age > self.newer_than))


def read_dead_letter(message: AbstractIncomingMessage, index: int, max_bytes: int) -> DeadLetter:
    headers = dict(message.headers or {})
    deaths = [d for d in headers.get("x-death") or [] if isinstance(d, Mapping)]
    latest = deaths[0] if deaths else {}  # the broker lists x-death newest first
    event_id, event_type, alertnames = _describe_event(message, headers, max_bytes)
    broker_error = ""
    if latest:
        broker_error = f"dead-lettered by the broker from {_text(latest.get('queue'))} ({_text(latest.get('reason'))})"
    return DeadLetter(
        index=index,
        reason=_text(headers.get(REASON)) or _text(latest.get("reason")) or "unknown",
        alertnames=alertnames,
        attempts=attempts_of(headers),
        replays=_count(headers.get(REPLAYS)),
        first_failure=_when(headers.get(FIRST_FAILURE)) or _when(deaths[-1].get("time") if deaths else None),
        last_failure=_when(headers.get(LAST_FAILURE)) or _when(latest.get("time")),
        last_error=_text(headers.get(LAST_ERROR)) or broker_error,
        event_id=event_id,
        event_type=event_type,
        body_size=len(message.body),
        headers=headers,
        properties={name: getattr(message, name) for name in _PROPERTIES if getattr(message, name) is not None},
        body=message.body,
    )


@asynccontextmanager
async def open_channel(settings: Settings) -> AsyncIterator[AbstractChannel]:
    """A confirming channel on which an unroutable publish raises; broker errors become ours."""
    connection = await connect(settings, "dlq", robust=False)
    async with connection:
        yield await connection.channel(publisher_confirms=True, on_return_raises=True)


async def browse(channel: AbstractChannel, settings: Settings, selection: Selection = Selection()) -> list[DeadLetter]:
    return await _sweep(channel, settings, selection, None)


async def find(channel: AbstractChannel, settings: Settings, key: str) -> DeadLetter | None:
    """The dead letter at index `key` (as `list` numbers them), or with event/message id `key`."""

    def wanted(letter: DeadLetter, now: datetime) -> bool:
        if key.isdigit():
            return letter.index == int(key)
        return key in (letter.event_id, letter.properties.get("message_id"))

    found = await _sweep(channel, settings, Selection(limit=1), None, wanted)
    return found[0] if found else None


async def replay(
    channel: AbstractChannel,
    settings: Settings,
    selection: Selection,
    *,
    dry_run: bool = False,
    progress: Callable[[DeadLetter], None] | None = None,
) -> list[DeadLetter]:
    """Republish the selected dead letters to the input exchange, each with one more replay."""

    async def republish(topology: Topology, message: AbstractIncomingMessage, letter: DeadLetter) -> None:
        await _republish(topology.input_exchange, message, letter)
        if progress is not None:
            progress(letter)

    return await _sweep(channel, settings, selection, None if dry_run else republish)


async def purge(channel: AbstractChannel, settings: Settings, selection: Selection, *, dry_run: bool = False) -> list[DeadLetter]:
    async def drop(topology: Topology, message: AbstractIncomingMessage, letter: DeadLetter) -> None:
        await message.ack()

    return await _sweep(channel, settings, selection, None if dry_run else drop)


Action = Callable[[Topology, AbstractIncomingMessage, DeadLetter], Awaitable[None]]


async def _sweep(
    channel: AbstractChannel,
    settings: Settings,
    selection: Selection,
    action: Action | None,
    wanted: Callable[[DeadLetter, datetime], bool] | None = None,
) -> list[DeadLetter]:
    topology = await _declare(channel, settings)
    queue = await channel.declare_queue(dlq_name(settings.input_queue), passive=True)
    count = queue.declaration_result.message_count or 0
    wanted = wanted or selection.matches
    now = datetime.now(timezone.utc)
    held: list[AbstractIncomingMessage] = []
    chosen: list[DeadLetter] = []
    try:
        # Always a full pass, even with a limit: a requeued message goes to the back of the
        # queue, so taking every one and requeueing in order keeps the order `list` showed.
        for index in range(1, count + 1):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            held.append(message)
            letter = read_dead_letter(message, index, settings.max_event_bytes)
            if (selection.limit is None or len(chosen) < selection.limit) and wanted(letter, now):
                if action is not None:
                    await action(topology, message, letter)
                chosen.append(letter)
    finally:
        await _requeue_rest(channel, queue, held, remaining=count - sum(m.processed for m in held))
    return chosen


async def _requeue_rest(
    channel: AbstractChannel, queue: AbstractQueue, held: list[AbstractIncomingMessage], remaining: int
) -> None:
    if channel.is_closed:
        return  # the broker requeues every unacked message of a closed channel itself
    for message in held:
        if not message.processed:
            await message.nack(requeue=True)
    # A quorum queue takes returns back asynchronously: until it has, they are neither counted
    # nor delivered, and the next pass (or command) would miss them or see them out of order.
    deadline = asyncio.get_running_loop().time() + _SETTLE_TIMEOUT_S
    while asyncio.get_running_loop().time() < deadline:
        declared = await channel.declare_queue(queue.name, passive=True)
        if (declared.declaration_result.message_count or 0) >= remaining:
            return
        await asyncio.sleep(0.01)
    log.warning("dead-letter queue %s: requeued messages not visible yet after %ss", queue.name, _SETTLE_TIMEOUT_S)


async def _republish(exchange: AbstractExchange, message: AbstractIncomingMessage, letter: DeadLetter) -> None:
    headers = {
        key: value for key, value in letter.headers.items()
        if key not in _REPLAY_DROPS and not key.startswith("x-first-death-")
    }
    headers[ATTEMPTS] = 0
    headers[REPLAYS] = letter.replays + 1
    try:
        await publish_confirmed(exchange, copy_message(message, headers), "", True, _CONFIRM_TIMEOUT_S)
    except TransientError as exc:
        raise TransientError(f"replay of dead letter #{letter.index}: {exc}") from exc
    await message.ack()


async def _declare(channel: AbstractChannel, settings: Settings) -> Topology:
    try:
        return await declare(channel, settings)
    except AMQPChannelError as exc:
        raise ConfigError(
            f"the broker refused to declare the queues of {settings.input_queue!r}: {exc}; "
            "the AGENT_SRE_* queue settings must match the running worker's"
        ) from exc


def _describe_event(
    message: AbstractIncomingMessage, headers: dict[str, Any], max_bytes: int
) -> tuple[str | None, str | None, tuple[str, ...]]:
    """Event id, type and alert names, as far as a possibly broken message allows."""
    names = tuple(n for n in _text(headers.get(ALERTNAMES)).split(",") if n)
    attributes = normalise_headers(headers)
    event_id, event_type = attributes.get("id") or message.message_id, attributes.get("type")
    data: Any = None
    try:
        event = decode_event(
            message.body, headers, content_type=message.content_type, message_id=message.message_id, max_bytes=max_bytes
        )
        event_id, event_type, data = event.id, event.type, event.data
    except InputError:
        if len(message.body) <= max_bytes:
            data = _json_or_none(message.body)
    if not names and data is not None:
        try:
            names = tuple(dict.fromkeys(alert.alertname for alert in parse_alerts(data)))
        except InputError:
            pass
    return event_id, event_type, names


def _json_or_none(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return "" if value is None else str(value)


def _count(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _when(value: Any) -> datetime | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
