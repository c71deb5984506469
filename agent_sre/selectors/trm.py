"""`trm`: the Tiny Recursive Model picks the function and points at the labels that fill it.

The model is loaded once in `start()`. Inference runs in a worker thread, never on the event
loop, and alerts that arrive together (an alert storm) share one forward pass: the first alert
opens a short window, and everything queued by its end goes into the same micro-batch. A caller
that gave up (the chain's timeout cancels `select`) is skipped before its alert is computed.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from ..schemas.alert import Alert
from ..schemas.catalog import Catalog
from ..schemas.decision import Proposal
from ..trm.predict import Prediction, Predictor
from .base import SelectorContext

log = logging.getLogger(__name__)

_Pending = tuple[Alert, "asyncio.Future[Prediction]"]


class TRMSelector:
    name = "trm"

    def __init__(
        self, catalog: Catalog, model_dir: Path | None = None, max_batch: int = 32, window_s: float = 0.002
    ) -> None:
        self.catalog, self.model_dir = catalog, model_dir
        self.max_batch, self.window_s = max_batch, window_s
        self.predictor: Predictor | None = None
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._lock:
            if self.predictor is None:
                self.predictor = await asyncio.to_thread(Predictor.load, self.catalog, self.model_dir)
            if self._worker is None or self._worker.done():
                self._queue = asyncio.Queue()
                self._worker = asyncio.create_task(self._run(), name="trm-batcher")

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None

    async def select(self, alert: Alert) -> Proposal | None:
        if self._worker is None or self._worker.done():
            await self.start()
        assert self._queue is not None
        future: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        await self._queue.put((alert, future))
        prediction = await future
        if prediction.function not in self.catalog.by_name:
            return None
        labels = ", ".join(f"{k}={v}" for k, v in prediction.parameters.items()) or "none"
        return Proposal(
            lambda_function=prediction.function,
            parameters=prediction.parameters,
            confidence=round(prediction.confidence, 4),
            reasoning=f"TRM chose {prediction.function} after {prediction.steps} supervision step(s); "
            f"parameters copied from the alert's labels: {labels}",
            iterations=prediction.steps,
        )

    async def _run(self) -> None:
        assert self._queue is not None and self.predictor is not None
        while True:
            batch = [await self._queue.get()]
            await asyncio.sleep(self.window_s)  # let the rest of a burst arrive
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            live = [(alert, future) for alert, future in batch if not future.done()]
            if not live:
                continue
            try:
                predictions = await asyncio.to_thread(self.predictor.predict, [alert for alert, _ in live])
            except Exception as exc:  # isolation point: fail these alerts, keep serving the next ones
                log.exception("trm inference failed for %d alert(s)", len(live))
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), prediction in zip(live, predictions):
                if not future.done():
                    future.set_result(prediction)


def create(context: SelectorContext) -> TRMSelector:
    return TRMSelector(context.catalog)
