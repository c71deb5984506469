"""Alerts that arrive together share one embedding pass.

An alert storm puts many `select` calls in flight at once. Embedding them one by one would queue
them behind one lock; instead they are gathered and sent to the model thread
(`agent_sre.compute`) as one batch, and each caller gets its own result back. A lone alert goes
at once: the callers of the same event-loop turn join it, and whoever arrives while a batch is
computing waits for it to finish and goes in the next batch, so a storm still shares passes
without a fixed wait on every alert (a 2 ms window added 2 ms to every TRM decision, one alert at
a time). `window_s` > 0 waits that long for more before the first batch. When a batch fails,
its items are computed again one by one, so that one alert the model cannot read fails alone and
not the storm around it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

from .. import compute

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


class MicroBatcher(Generic[Item, Result]):
    def __init__(
        self, compute: Callable[[list[Item]], list[Result]], max_batch: int = 32, window_s: float = 0.0
    ) -> None:
        self.compute = compute  # blocking; runs on the model thread
        self.max_batch, self.window_s = max_batch, window_s
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._flush: asyncio.Task[None] | None = None

    async def __call__(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._flush is None or self._flush.done():
            self._flush = asyncio.create_task(self._drain(), name="retrieval-batch")
        return await future

    async def close(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            await asyncio.gather(self._flush, return_exceptions=True)
        for _, future in self._waiting:
            future.cancel()
        self._waiting.clear()

    async def _drain(self) -> None:
        # 0: one loop turn, so that the callers of this turn join; later arrivals wait for the next batch
        await asyncio.sleep(self.window_s)
        while self._waiting:
            batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
            live = [(item, future) for item, future in batch if not future.done()]  # skip callers that gave up
            if not live:
                continue
            await self._serve(live)

    async def _serve(self, live: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await compute.run(self.compute, [item for item, _ in live])
        except Exception as exc:  # isolation point: a bad item must not fail the callers beside it
            if len(live) > 1:
                log.warning("a batch of %d failed (%r): computing its items one by one", len(live), exc)
                for one in live:
                    if not one[1].done():
                        await self._serve([one])
                return
            log.exception("computing a batched item failed")
            if not live[0][1].done():
                live[0][1].set_exception(exc)
            return
        for (_, future), result in zip(live, results):
            if not future.done():
                future.set_result(result)
