"""Behind `agent-sre calibrate` (`agent_sre.cli.calibrate`): fit the rag and fewshot confidence maps on the generator's val split and
write them to `agent_sre/retrieval/fitted.json`, where the selectors read them.

    agent-sre calibrate [--per-pattern 4] [--seed 0]

A fallback selector mostly sees alerts the TRM was unsure of, often of a family it never saw.
So half of the val alerts (every other family) are scored as if their family were unknown: for
rag without the runbook chunk of their own alert name, for fewshot without the training examples
of their own alert name. Without that, every val alert would have an exact twin in the index and
the fitted confidence would promise too much on new names. Some made-up alerts (random names,
labels and words) join them, counted wrong whatever is chosen: nothing in the runbook or the
examples supports any answer for a stranger, so it must not look like a confident match.
"""

from __future__ import annotations

import json
import random

import numpy as np

from ..schemas.alert import Alert
from ..schemas.catalog import load_catalog
from ..selectors.fewshot import TRAIN_SEED, FewShotSelector, fewshot_features
from ..selectors.rag import RagSelector, rag_features
from ..settings import Settings
from ..knowledge.generate import Example, generate
from ..knowledge.runbook import load_runbook
from ..logistic import Logistic, fit_logistic
from ..retrieval.fitted import FITTED
from ..retrieval.neighbours import ExampleSet, LabelledText
from ..retrieval.runbook_index import RunbookIndex
from ..retrieval.text import alert_text

NO_ANSWER = "(none)"  # no catalog function is right for a made-up alert
RAG_FEATURES = ["score", "margin", "cosine", "lexical", "known_words", "stranger"]
FEWSHOT_FEATURES = ["agreement", "margin", "top_similarity", "mean_similarity", "known_words", "stranger"]


def made_up_alerts(count: int, seed: int) -> list[Example]:
    """Alerts whose names, label names and summaries are random syllables or letters."""
    rng = random.Random(f"made-up/{seed}")
    syllables = ["qu", "zor", "bli", "ntr", "vax", "plo", "kre", "mif", "dus", "wep", "xan", "yol", "gri", "tof"]
    generic = ["foo", "team", "app", "env", "owner", "tier", "region", "zone", "component", "source"]

    def word() -> str:
        if rng.random() < 0.5:
            return "".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(rng.randrange(4, 9)))
        return "".join(rng.choice(syllables) for _ in range(rng.randrange(2, 4)))

    examples = []
    for _ in range(count):
        name = "".join(word().capitalize() for _ in range(rng.randrange(1, 4)))
        keys = [rng.choice(generic) if rng.random() < 0.5 else word() for _ in range(rng.randrange(0, 4))]
        labels = {"alertname": name, **{key: word() for key in keys}}
        annotations = {"summary": " ".join(word() for _ in range(rng.randrange(3, 9)))} if rng.random() < 0.5 else {}
        examples.append(Example(Alert(labels=labels, annotations=annotations), NO_ANSWER, "made-up"))
    return examples


def fit_rag(selector: RagSelector, examples: list[Example], unseen: set[str]) -> Logistic:
    assert selector.index is not None and selector.embedder is not None
    full, indexes = selector.index, {}
    vectors = selector.embedder.encode([alert_text(e.alert) for e in examples])
    rows, correct = [], []
    for example, vector in zip(examples, vectors):
        index = full
        if example.family in unseen:
            if example.family not in indexes:
                keep = [i for i, c in enumerate(full.chunks) if c.pattern != example.family]
                indexes[example.family] = RunbookIndex([full.chunks[i] for i in keep], full.vectors[keep])
            index = indexes[example.family]
        ranking = index.rank(alert_text(example.alert), vector)
        rows.append(rag_features(example.alert, ranking, index))
        correct.append(ranking[0].function == example.function)
    return _report("rag", fit_logistic(RAG_FEATURES, rows, correct), rows, correct)


def fit_fewshot(selector: FewShotSelector, examples: list[Example], unseen: set[str], seed: int) -> Logistic:
    assert selector.embedder is not None
    entries = {f: e for f, e in load_runbook().items() if f in selector.catalog.by_name}
    train = generate(entries, selector.catalog, "train", selector.per_pattern, seed)
    labelled = [LabelledText(alert_text(e.alert), e.function, "train") for e in train]
    train_vectors = selector.cache.load_or_build(
        "fewshot-train", [e.text for e in labelled], selector.embedder.model_id, selector.embedder.encode
    )
    families = np.array([e.family for e in train])
    full, sets = ExampleSet(labelled, train_vectors), {}
    vectors = selector.embedder.encode([alert_text(e.alert) for e in examples])
    rows, correct = [], []
    for example, vector in zip(examples, vectors):
        example_set = full
        if example.family in unseen:
            if example.family not in sets:
                keep = np.flatnonzero(families != example.family)
                sets[example.family] = ExampleSet([labelled[i] for i in keep], train_vectors[keep])
            example_set = sets[example.family]
        vote = example_set.vote(vector, selector.k)
        assert vote is not None
        rows.append(fewshot_features(example.alert, vote, example_set))
        correct.append(vote.function == example.function)
    return _report("fewshot", fit_logistic(FEWSHOT_FEATURES, rows, correct), rows, correct)


def _report(name: str, fitted: Logistic, rows: list[dict[str, float]], correct: list[bool]) -> Logistic:
    import torch

    from ..trm.evaluate import expected_calibration_error

    confidence = torch.tensor([min(fitted(row), row.get("agreement", 1.0)) for row in rows])  # fewshot's cap
    ece = expected_calibration_error(confidence, torch.tensor(correct, dtype=torch.float32))
    print(f"{name}: {len(rows)} val alerts, accuracy {np.mean(correct):.3f}, ECE after fit {ece:.3f}")
    return fitted


def write(rag: Logistic, fewshot: Logistic, command: str) -> None:
    """The maps, and the command that fitted them (run it again to regenerate them)."""
    maps = {"command": command, "rag": rag.to_dict(), "fewshot": fewshot.to_dict()}
    FITTED.write_text(json.dumps(maps, indent=2) + "\n")


async def fit_and_write(per_pattern: int, seed: int) -> None:
    settings, catalog = Settings(), load_catalog()
    entries = load_runbook(functions=catalog.names)
    examples = generate(entries, catalog, "val", per_pattern, seed)
    names = sorted({e.family for e in examples})
    unseen = set(names[::2])
    examples += made_up_alerts(len(examples) // 10, seed)
    rag = RagSelector(catalog, settings.retrieval_cache_dir)
    fewshot = FewShotSelector(
        catalog, settings.retrieval_cache_dir, settings.fewshot_k, settings.fewshot_examples_per_pattern
    )
    await rag.start()
    await fewshot.start()
    rag_map = fit_rag(rag, examples, unseen)
    fewshot_map = fit_fewshot(fewshot, examples, unseen, TRAIN_SEED)
    write(rag_map, fewshot_map, f"agent-sre calibrate --per-pattern {per_pattern} --seed {seed}")
    print(f"wrote {FITTED}")
