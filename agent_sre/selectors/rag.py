"""`rag`: hybrid retrieval over the runbook picks the function; the catalog fills its parameters.

The runbook is indexed once in `start()` (its chunk embeddings shipped with the package, or
cached on disk, keyed by their text), and each alert costs one embedding, computed in a worker thread; alerts that arrive
together share one batch. Retrieval only names a function: its parameters come from
`catalog.resolve`, i.e. from the alert's own labels, never from the runbook or from annotation
text. Confidence is a logistic map of the best fused score, its cosine and BM25 parts, the margin
over the next function and how many of the name's words the runbook knows, fitted on val.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from .. import compute
from ..retrieval import fitted
from ..retrieval.batcher import MicroBatcher
from ..retrieval.cache import VectorCache
from ..retrieval.calibration import Logistic
from ..retrieval.embedder import Embedder, shared_embedder
from ..retrieval.runbook_index import Chunk, FunctionScore, RunbookIndex, runbook_chunks
from ..retrieval.text import alert_text, known_share
from ..schemas.alert import Alert
from ..schemas.catalog import Catalog
from ..schemas.decision import EvidenceKind, Proposal
from ..knowledge.runbook import load_runbook
from .base import SelectorContext

CACHE_KIND = "rag-runbook"


def rag_features(alert: Alert, ranking: list[FunctionScore], index: RunbookIndex) -> dict[str, float]:
    best = ranking[0]
    second = ranking[1].score if len(ranking) > 1 else 0.0
    return {
        "score": best.score,
        "margin": best.score - second,
        "cosine": best.cosine,
        "lexical": best.lexical,
        "known_words": (known := known_share(alert, index.vocabulary)),
        "stranger": float(known == 0.0),  # not one word of the name is in the runbook
    }


class RagSelector:
    name = "rag"
    evidence = EvidenceKind.EMBEDDING_NEIGHBOURS

    def __init__(self, catalog: Catalog, cache_dir: Path | None, runbook_path: Path | None = None) -> None:
        self.catalog, self.runbook_path = catalog, runbook_path
        self.cache = VectorCache(cache_dir)
        self.calibration = Logistic.from_dict(fitted.RAG)
        self.embedder: Embedder | None = None
        self.index: RunbookIndex | None = None
        self._lock = asyncio.Lock()
        self._batch = MicroBatcher(self.rank)  # concurrent alerts share one embedding pass

    async def start(self) -> None:
        async with self._lock:
            if self.index is None:
                await compute.run(self.load)

    def chunks(self) -> list[Chunk]:
        """What the index holds: one chunk per runbook alert name of a catalog function."""
        return runbook_chunks(load_runbook(self.runbook_path), self.catalog)

    def load(self) -> None:
        """Load the model and index the runbook (blocking)."""
        chunks = self.chunks()
        embedder = shared_embedder()
        vectors = self.cache.load_or_build(CACHE_KIND, [c.text for c in chunks], embedder.model_id, embedder.encode)
        self.embedder, self.index = embedder, RunbookIndex(chunks, vectors)

    def rank(self, alerts: list[Alert]) -> list[list[FunctionScore]]:
        """Every catalog function ranked for each alert (blocking; one batched embedding)."""
        assert self.embedder is not None and self.index is not None, "start() first"
        texts = [alert_text(alert) for alert in alerts]
        vectors = self.embedder.encode(texts)
        return [self.index.rank(text, vector) for text, vector in zip(texts, vectors)]

    def propose(self, alert: Alert, ranking: list[FunctionScore]) -> Proposal | None:
        if not ranking or self.index is None:
            return None
        best, features = ranking[0], rag_features(alert, ranking, self.index)
        runner_up = f"; next {ranking[1].function} at {ranking[1].score:.3f}" if len(ranking) > 1 else ""
        return Proposal(
            lambda_function=best.function,
            confidence=round(self.calibration(features), 4),
            reasoning=f"runbook section {best.function} (alert {best.pattern}) is the closest match: "
            f"score {best.score:.3f} (cosine {best.cosine:.3f}, BM25 {best.lexical:.2f} of best){runner_up}; "
            "parameters from the alert's labels",
        )

    async def prepare(self, alert: Alert) -> None:
        """Embed the alert on the side thread; `select` then finds it in the embedder's memory."""
        if self.embedder is not None:
            await compute.run_aside(self.embedder.encode, [alert_text(alert)])

    async def select(self, alert: Alert) -> Proposal | None:
        if self.index is None:
            await self.start()
        assert self.embedder is not None and self.index is not None
        text = alert_text(alert)
        vector = self.embedder.recent(text)
        if vector is not None:  # embedded already (prepare, the TRM): rank here, no thread hop
            return self.propose(alert, self.index.rank(text, vector))
        return self.propose(alert, await self._batch(alert))

    async def close(self) -> None:
        await self._batch.close()


def create(context: SelectorContext) -> RagSelector:
    return RagSelector(context.catalog, context.settings.retrieval_cache_dir)
