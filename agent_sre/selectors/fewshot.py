"""`fewshot`: the k nearest labelled alerts vote on the function; the catalog fills its parameters.

The examples are the generator's training split (alerts expanded from the runbook's `alerts`
names) plus the confirmed past decisions in the audit log, read once in `start()`. Their
embeddings are cached on disk like rag's. A neighbour lends only its function, never its values:
parameters come from `catalog.resolve` on the alert at hand. Confidence is a logistic map of the
vote's agreement and margin and of how similar the neighbours are, fitted on the val split, and
never more than the agreement itself: the val split has few split votes, so the fit alone can
score a 2-2 tie above the chain's threshold.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from .. import compute
from ..retrieval import fitted
from ..retrieval.audit_examples import confirmed_examples
from ..retrieval.batcher import MicroBatcher
from ..retrieval.cache import VectorCache
from ..retrieval.calibration import Logistic
from ..retrieval.embedder import Embedder, shared_embedder
from ..retrieval.neighbours import ExampleSet, LabelledText, Vote
from ..retrieval.text import alert_text, known_share
from ..schemas.alert import Alert
from ..schemas.catalog import Catalog
from ..schemas.decision import Proposal
from ..knowledge.generate import generate
from ..knowledge.real import RENAMED_SHARE, RealAlert, load_real_alerts, real_examples
from ..knowledge.runbook import load_runbook
from .base import SelectorContext

TRAIN_SEED = 0
REAL_PER_ALERT = 2  # examples per line of the real-alert knowledge, beside the runbook's


def fewshot_features(alert: Alert, vote: Vote, examples: ExampleSet) -> dict[str, float]:
    known = known_share(alert, examples.vocabulary)
    # "stranger": not one word of the name occurs in any example, so the neighbours are chance
    return {**vote.features(), "known_words": known, "stranger": float(known == 0.0)}


class FewShotSelector:
    name = "fewshot"

    def __init__(
        self,
        catalog: Catalog,
        cache_dir: Path | None,
        k: int = 7,
        per_pattern: int = 8,
        audit_log: Path | None = None,
        runbook_path: Path | None = None,
        real_alerts: list[RealAlert] | None = None,
    ) -> None:
        self.catalog, self.k, self.per_pattern = catalog, k, per_pattern
        self.real_alerts = real_alerts  # None: every line of the package's real-alert knowledge
        self.audit_log, self.runbook_path = audit_log, runbook_path
        self.cache = VectorCache(cache_dir)
        self.calibration = Logistic.from_dict(fitted.FEWSHOT)
        self.embedder: Embedder | None = None
        self.examples: ExampleSet | None = None
        self._lock = asyncio.Lock()
        self._batch = MicroBatcher(self.vote)  # concurrent alerts share one embedding pass

    async def start(self) -> None:
        async with self._lock:
            if self.examples is None:
                await compute.run(self.load)

    def load(self, extra: list[LabelledText] | None = None) -> None:
        """Load the model and embed the example set (blocking); `extra` examples are added as given."""
        embedder = shared_embedder()
        groups = {
            "fewshot-train": self._training_examples(),
            "fewshot-audit": confirmed_examples(self.audit_log, self.catalog),
        }
        if extra:
            groups["fewshot-extra"] = extra
        examples, blocks = [], []
        for kind, group in groups.items():
            if group:
                texts = [e.text for e in group]
                blocks.append(self.cache.load_or_build(kind, texts, embedder.model_id, embedder.encode))
                examples.extend(group)
        vectors = np.concatenate(blocks) if blocks else np.zeros((0, embedder.dimension), dtype=np.float32)
        self.embedder, self.examples = embedder, ExampleSet(examples, vectors)

    def _training_examples(self) -> list[LabelledText]:
        if self.per_pattern <= 0:
            return []
        entries = {f: e for f, e in load_runbook(self.runbook_path).items() if f in self.catalog.by_name}
        generated = generate(entries, self.catalog, "train", self.per_pattern, TRAIN_SEED)
        real = load_real_alerts() if self.real_alerts is None else self.real_alerts
        generated += real_examples(real, REAL_PER_ALERT, TRAIN_SEED, renamed=RENAMED_SHARE)
        return [LabelledText(alert_text(e.alert), e.function, "train") for e in generated]

    def vote(self, alerts: list[Alert]) -> list[Vote | None]:
        """The neighbours' vote for each alert (blocking; one batched embedding)."""
        assert self.embedder is not None and self.examples is not None, "start() first"
        vectors = self.embedder.encode([alert_text(alert) for alert in alerts])
        return [self.examples.vote(vector, self.k) for vector in vectors]

    def propose(self, alert: Alert, vote: Vote | None) -> Proposal | None:
        if vote is None or self.examples is None:
            return None
        closest = ", ".join(f"{e.function} ({e.origin}, {s:.2f})" for e, s in vote.neighbours[:3])
        return Proposal(
            lambda_function=vote.function,
            confidence=round(min(self.calibration(fewshot_features(alert, vote, self.examples)), vote.agreement), 4),
            reasoning=f"{len(vote.neighbours)} nearest examples give {vote.function} {vote.agreement:.0%} of the "
            f"vote (closest: {closest}); parameters from the alert's labels",
        )

    async def prepare(self, alert: Alert) -> None:
        """Embed the alert on the side thread; `select` then finds it in the embedder's memory."""
        if self.embedder is not None:
            await compute.run_aside(self.embedder.encode, [alert_text(alert)])

    async def select(self, alert: Alert) -> Proposal | None:
        if self.examples is None:
            await self.start()
        return self.propose(alert, await self._batch(alert))

    async def close(self) -> None:
        await self._batch.close()


def create(context: SelectorContext) -> FewShotSelector:
    settings = context.settings
    return FewShotSelector(
        context.catalog,
        settings.retrieval_cache_dir,
        k=settings.fewshot_k,
        per_pattern=settings.fewshot_examples_per_pattern,
        audit_log=settings.audit_log,
    )
