"""The one way a step gives back what it holds when it fails: `async with holding(...)`.

A claim (cooldown, tokens), an approval request held in Redis, the storm's one escalation: the
body publishes with it held. Whatever stops the body (an unconfirmed publish, a cancellation at
shutdown, a bug), each thing is given back, in order, and the failure propagates: the message is
then not acked or is retried, and comes back to find everything free, or its alert would be
suppressed and lost. With `retry`, a TransientError propagates as `Retry` carrying it (the
alert's decision) for the alert's `retry` audit record.

Once published, the other way round: `recorded(...)` awaits what follows the publish (its
cooldown, the result it awaits, an approval's answer) and logs what fails: retrying would
publish twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from ..errors import Retry, TransientError

log = logging.getLogger(__name__)


class holding:  # noqa: N801 (a context manager, named as contextlib's are)
    """`async with holding(claim.release, retry={"decision": dump}): ...` (a class, not a
    generator: it runs once per published trigger)."""

    __slots__ = ("give_back", "retry")

    def __init__(self, *give_back: Callable[[], Awaitable[object]], retry: dict[str, Any] | None = None) -> None:
        self.give_back = give_back
        self.retry = retry

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        if exc is None:
            return False
        for step in self.give_back:
            await step()
        if self.retry is not None and isinstance(exc, TransientError) and not isinstance(exc, Retry):
            raise Retry(str(exc), **self.retry) from exc
        return False  # the failure propagates


async def recorded(trigger_id: str, *records: Awaitable[object]) -> None:
    """Await each record of `trigger_id`, published already: a TransientError is logged, not
    raised. (A claim left unrecorded expires on its own.)"""
    for record in records:
        try:
            await record
        except TransientError as exc:
            log.warning("%s published, but what follows it could not be recorded: %s", trigger_id, exc)
