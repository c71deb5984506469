"""`fewshot`: the k nearest labelled alerts vote on the function; the catalog fills its parameters.

The examples are the generator's training split (alerts expanded from the runbook's `alerts`
names) plus the confirmed past decisions in the audit log, read in `start()` and read again, on
the model thread, when the log has changed and `refresh_s` has passed since the last look: a
running worker learns a decision that worked within minutes, not at its next restart. Their
embeddings are shipped with the package or cached on disk like rag's (the audit's new ones in
memory until a restart). A neighbour lends only its function, never its values: parameters come from `catalog.resolve` on the alert at hand. Confidence is a logistic map of the
vote's agreement and margin and of how similar the neighbours are, fitted on the val split, and
never more than the agreement itself: the val split has few split votes, so the fit alone can
score a 2-2 tie above the chain's threshold.
"""

from __future__ import annotations

import asyncio
import logging
import time
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
from ..schemas.decision import EvidenceKind, Proposal
from ..knowledge.generate import generate
from ..knowledge.real import RENAMED_SHARE, RealAlert, load_real_alerts, real_examples
from ..knowledge.runbook import load_runbook
from .base import SelectorContext

log = logging.getLogger(__name__)

TRAIN_SEED = 0
REAL_PER_ALERT = 2  # examples per line of the real-alert knowledge, beside the runbook's


def fewshot_features(alert: Alert, vote: Vote, examples: ExampleSet) -> dict[str, float]:
    known = known_share(alert, examples.vocabulary)
    # "stranger": not one word of the name occurs in any example, so the neighbours are chance
    return {**vote.features(), "known_words": known, "stranger": float(known == 0.0)}


class FewShotSelector:
    name = "fewshot"
    evidence = EvidenceKind.EMBEDDING_NEIGHBOURS

    def __init__(
        self,
        catalog: Catalog,
        cache_dir: Path | None,
        k: int = 7,
        per_pattern: int = 8,
        audit_log: Path | None = None,
        runbook_path: Path | None = None,
        real_alerts: list[RealAlert] | None = None,
        refresh_s: float = 60.0,
    ) -> None:
        self.catalog, self.k, self.per_pattern = catalog, k, per_pattern
        self.real_alerts = real_alerts  # None: every line of the package's real-alert knowledge
        self.audit_log, self.runbook_path = audit_log, runbook_path
        self.cache = VectorCache(cache_dir)
        self.calibration = Logistic.from_dict(fitted.FEWSHOT)
        self.embedder: Embedder | None = None
        self.examples: ExampleSet | None = None
        self.refresh_s = refresh_s
        self._base: tuple[list[LabelledText], np.ndarray] | None = None  # everything but the audit's
        self._audit: dict[LabelledText, np.ndarray] = {}  # the audit's examples and their vectors
        self._audit_seen: tuple[int, int] | None = None  # the log's size and mtime when last read
        self._next_look = 0.0
        self._refreshing: asyncio.Future[bool] | None = None
        self._lock = asyncio.Lock()
        self._batch = MicroBatcher(self.vote)  # concurrent alerts share one embedding pass

    async def start(self) -> None:
        async with self._lock:
            if self.examples is None:
                await compute.run(self.load)

    def load(self, extra: list[LabelledText] | None = None) -> None:
        """Load the model and embed the example set (blocking); `extra` examples are added as given."""
        embedder = shared_embedder()
        self._audit_seen = _stamp(self.audit_log)
        groups = {
            "fewshot-train": self.training_examples(),
            "fewshot-audit": confirmed_examples(self.audit_log, self.catalog),
        }
        if extra:
            groups["fewshot-extra"] = extra
        base, base_blocks = [], []
        for kind, group in groups.items():
            if group:
                texts = [e.text for e in group]
                vectors = self.cache.load_or_build(kind, texts, embedder.model_id, embedder.encode)
                if kind == "fewshot-audit":
                    self._audit = dict(zip(group, vectors))
                else:
                    base.extend(group)
                    base_blocks.append(vectors)
        empty = np.zeros((0, embedder.dimension), dtype=np.float32)
        self.embedder = embedder
        self._base = (base, np.concatenate(base_blocks) if base_blocks else empty)
        self._combine()

    def refresh_audit(self) -> bool:
        """Read the audit log again (blocking); embed the examples it confirms that are new.
        Whether the example set changed."""
        assert self.embedder is not None, "load() first"
        self._audit_seen = _stamp(self.audit_log)
        confirmed = confirmed_examples(self.audit_log, self.catalog)
        if set(confirmed) == set(self._audit):
            return False
        new = [e for e in confirmed if e not in self._audit]
        vectors = dict(zip(new, self.embedder.encode([e.text for e in new]))) if new else {}
        self._audit = {e: self._audit.get(e, vectors.get(e)) for e in confirmed}  # type: ignore[misc]
        self._combine()
        return True

    def _combine(self) -> None:
        assert self._base is not None and self.embedder is not None
        examples, vectors = self._base
        if self._audit:
            audit = list(self._audit)
            examples = examples + audit
            vectors = np.concatenate([vectors, np.stack([self._audit[e] for e in audit])])
        self.examples = ExampleSet(examples, vectors)  # one assignment: a vote sees the old set or the new

    def _look_at_the_audit(self) -> None:
        """Refresh in the background when the log changed and it is time to look again."""
        if self.audit_log is None or self.embedder is None:
            return
        now = time.monotonic()
        if now < self._next_look or (self._refreshing is not None and not self._refreshing.done()):
            return
        self._next_look = now + self.refresh_s
        if _stamp(self.audit_log) != self._audit_seen:
            self._refreshing = asyncio.ensure_future(compute.run(self.refresh_audit))
            self._refreshing.add_done_callback(_report)

    def training_examples(self) -> list[LabelledText]:
        """The runbook's generated alerts and the real-alert knowledge's, as labelled texts."""
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
        self._look_at_the_audit()
        assert self.embedder is not None and self.examples is not None
        vector = self.embedder.recent(alert_text(alert))
        if vector is not None:  # embedded already (rag, prepare, the TRM): vote here, no thread hop
            return self.propose(alert, self.examples.vote(vector, self.k))
        return self.propose(alert, await self._batch(alert))

    async def close(self) -> None:
        if self._refreshing is not None:
            await asyncio.gather(self._refreshing, return_exceptions=True)
        await self._batch.close()


def _stamp(path: Path | None) -> tuple[int, int] | None:
    try:
        status = path.stat() if path is not None else None
    except OSError:
        return None
    return (status.st_size, status.st_mtime_ns) if status is not None else None


def _report(task: asyncio.Future[bool]) -> None:
    if task.cancelled():
        return
    if (exc := task.exception()) is not None:
        log.warning("re-reading the audit log for few-shot examples failed: %r", exc)
    elif task.result():
        log.info("few-shot examples refreshed from the audit log")


def create(context: SelectorContext) -> FewShotSelector:
    settings = context.settings
    return FewShotSelector(
        context.catalog,
        settings.retrieval_cache_dir,
        k=settings.fewshot_k,
        per_pattern=settings.fewshot_examples_per_pattern,
        audit_log=settings.audit_log,
    )
