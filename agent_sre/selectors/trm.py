"""`trm`: the Tiny Recursive Model picks the function and points at the labels that fill it.

The model is loaded once in `start()`. Inference runs on the model thread (`agent_sre.compute`),
never on the event loop, and alerts that arrive together (an alert storm) share one forward pass
through the package's `MicroBatcher`; a caller that gave up (the chain's timeout cancels `select`)
is skipped before its alert is computed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from .. import compute
from ..retrieval.batcher import MicroBatcher
from ..schemas.alert import Alert
from ..schemas.catalog import ESCALATE, Catalog
from ..schemas.decision import EvidenceKind, Proposal
from ..trm.predict import Admissible, Prediction, Predictor
from .base import SelectorContext
from .gates import Gates


class TRMSelector:
    name = "trm"
    evidence = EvidenceKind.TRAINED_MODEL
    # On a trained name in a familiar form the halting head speaks, and is sure and right. On
    # anything else the confidence is the novelty map's, fitted on source projects the fold models
    # never saw: only an answer such alerts earned that often passes this bar, so on an unfamiliar
    # input the TRM abstains rather than vetoes, and rag, fewshot and the rules are asked
    # (benchmarks/bench_real.py --loso has what it then accepts, and how often it is right).
    default_threshold = 0.93

    def __init__(
        self, catalog: Catalog, model_dir: Path | None = None, max_batch: int = 32, window_s: float = 0.0,
        admissible: Admissible | None = None,
    ) -> None:
        self.catalog, self.model_dir = catalog, model_dir
        self.admissible = admissible  # the gates' (Gates.admissible): which actions could act at all
        self.predictor: Predictor | None = None
        self._batcher: MicroBatcher[Alert, Prediction] = MicroBatcher(self._predict, max_batch, window_s)
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._lock:
            if self.predictor is None:
                self.predictor = await compute.run(
                    Predictor.load, self.catalog, self.model_dir, admissible=self.admissible
                )

    async def close(self) -> None:
        await self._batcher.close()

    async def select(self, alert: Alert) -> Proposal | None:
        if self.predictor is None:
            await self.start()
        prediction = await self._batcher(alert)
        if prediction.function not in self.catalog.by_name or prediction.strange:
            return None  # a model that has not seen anything like the alert has no opinion to give
        labels = ", ".join(f"{k}={v}" for k, v in prediction.parameters.items()) or "none"
        return Proposal(
            lambda_function=prediction.function,
            parameters=prediction.parameters,
            confidence=round(prediction.confidence, 4),
            reasoning=f"TRM chose {prediction.function} after {prediction.steps} supervision step(s); "
            f"parameters copied from the alert's labels: {labels}{_why(prediction)}",
            iterations=prediction.steps,
            familiar=prediction.like_training,
        )

    def _predict(self, alerts: list[Alert]) -> list[Prediction]:
        assert self.predictor is not None  # select() starts the selector first
        return self.predictor.predict(alerts)


def _why(prediction: Prediction) -> str:
    if prediction.function == ESCALATE and prediction.admissible == ():
        return "; no action of the catalog could act on this alert (the gates and its labels allow none)"
    return ""


def create(context: SelectorContext) -> TRMSelector:
    return TRMSelector(context.catalog, admissible=Gates(context.catalog, context.settings).admissible)
