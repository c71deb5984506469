"""A third-party selector on an event loop of its own, in a thread of its own.

The worker's event loop serves every message at once, so a plugin that blocks it (a synchronous
call inside its `async select`) would stall them all. A selector installed from outside
agent-sre therefore runs each of its calls on its own loop: blocking, it blocks only itself, and
the chain's timeout for it answers in its place. The built-in selectors run on the worker's loop
and put their model work on the model thread (`agent_sre.compute`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from ..schemas.alert import Alert
from ..schemas.decision import Proposal

if TYPE_CHECKING:  # for the annotation only: base.py wraps plugins in OwnLoop
    from .base import Selector

T = TypeVar("T")


class OwnLoop:
    def __init__(self, selector: Selector) -> None:
        self.inner = selector
        self.name = selector.name
        for option in ("default_timeout_s", "default_threshold", "evidence"):
            if hasattr(selector, option):
                setattr(self, option, getattr(selector, option))
        if hasattr(selector, "prepare"):
            self.prepare = self._prepare
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"selector-{self.name}", daemon=True)
        self._thread.start()

    async def select(self, alert: Alert) -> Proposal | None:
        return await self._call(self.inner.select(alert))

    async def start(self) -> None:
        if (start := getattr(self.inner, "start", None)) is not None:
            await self._call(start())

    async def close(self) -> None:
        try:
            if (close := getattr(self.inner, "close", None)) is not None:
                await self._call(close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)  # a thread still blocked is a daemon

    async def _prepare(self, alert: Alert) -> None:
        await self._call(self.inner.prepare(alert))  # type: ignore[attr-defined]

    async def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        # Cancelling the wait (the chain's timeout) cancels the call on its own loop too, as soon
        # as that loop runs again.
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self._loop))
