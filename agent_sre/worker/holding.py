"""The one way a step gives back what it holds when it fails: `async with holding(...)`.

A claim (cooldown, tokens), an approval request held in Redis, the storm's one escalation: the
body publishes with it held. Whatever stops the body (an unconfirmed publish, a cancellation at
shutdown, a bug), each thing is given back, in order, and the failure propagates: the message is
then not acked or is retried, and comes back to find everything free, or its alert would be
suppressed and lost. With `retry`, a TransientError propagates as `Retry` carrying it (the
alert's decision) for the alert's `retry` audit record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from ..errors import Retry, TransientError


@asynccontextmanager
async def holding(*give_back: Callable[[], Awaitable[object]], retry: dict[str, Any] | None = None) -> AsyncIterator[None]:
    try:
        yield
    except BaseException as exc:
        for step in give_back:
            await step()
        if retry is not None and isinstance(exc, TransientError) and not isinstance(exc, Retry):
            raise Retry(str(exc), **retry) from exc
        raise
