"""Novelty: how far to trust the TRM on an alert name it never trained on.

The halting head's temperature is fitted on val, whose names are the training names. On a project
the model never saw it is as sure of a wrong answer as of a right one: trained without a fold of
source projects and scored on exactly those, its ECE was 0.09 to 0.16, mostly alerts read as a
confident `escalate` that a function fits. Then the chain stops before rag or fewshot can answer.

So an unseen name's confidence comes from a second map: a logistic over the halting logit, the
share of the name's words that training names used, and whether the answer is `escalate`. It is
fitted on held-out real sources, never on the model's own training data: each fold model is scored
on its fold's held-out lines (`agent-sre trm calibrate --on FOLD=DIR`). A fold model takes its
map from the other fold, so the benchmark stays honest; the shipped model takes it from both.
The draws differ from the benchmark's: another seed and the training value pools.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from ..knowledge.real import expected_answer, load_real_alerts, real_examples
from ..knowledge.sources import held_out
from ..retrieval.calibration import Logistic, fit_logistic
from ..schemas.alert import Alert
from ..schemas.catalog import ESCALATE, Catalog
from .encode import CAMEL_WORD
from .export import CONFIG

FEATURES = ("halt_logit", "known_words", "escalate", "familiarity")
CALIBRATION_SEED = 7  # not the benchmark's TEST_SEED


def name_vocabulary(names: Iterable[str]) -> frozenset[str]:
    return frozenset(word.lower() for name in names for word in CAMEL_WORD.findall(name))


def features(
    alert: Alert, function: str, halt_logit: float, vocabulary: frozenset[str], familiarity: float = 1.0
) -> dict[str, float]:
    words = [word.lower() for word in CAMEL_WORD.findall(alert.alertname)]
    return {
        "halt_logit": halt_logit,
        "known_words": sum(word in vocabulary for word in words) / len(words) if words else 0.0,
        "escalate": float(function == ESCALATE),
        "familiarity": familiarity,
    }


Answers = tuple[list[dict[str, float]], list[bool]]  # the map's features per alert, and whether it was right


def held_out_answers(fold: str, directory: Path, catalog: Catalog, per_alert: int = 2) -> Answers:
    """A fold model's answers to its fold's held-out lines (the unfamiliar ones: the map's to judge)."""
    from .predict import Predictor  # the predictor reads this module's map

    rows: list[dict[str, float]] = []
    right: list[bool] = []
    predictor = Predictor.load(catalog, directory, novelty=False)
    _, test = held_out(load_real_alerts(), fold)
    examples = real_examples(test, per_alert, CALIBRATION_SEED, pools="train")
    for example, prediction in zip(examples, predictor.predict([e.alert for e in examples])):
        if predictor.familiar(example.alert, prediction.familiarity):
            continue
        rows.append(features(example.alert, prediction.function, prediction.halt_logit, predictor.vocabulary,
                             prediction.familiarity))
        right.append((prediction.function, prediction.parameters) == expected_answer(example, catalog))
    return rows, right


def fit(answers: list[Answers]) -> Logistic:
    """The map, fitted on fold models' answers to their folds' held-out lines."""
    rows = [row for fold_rows, _ in answers for row in fold_rows]
    right = [r for _, fold_right in answers for r in fold_right]
    if not rows:
        raise ValueError("no held-out alert to fit on")
    return fit_logistic(list(FEATURES), rows, right)


def save(directory: Path, logistic: Logistic, folds: dict[str, Path]) -> None:
    """Store the map in the model's config.json, with what it was fitted on."""
    path = directory / CONFIG
    config = json.loads(path.read_text())
    config["novelty"] = {**logistic.to_dict(), "fitted_on": {fold: str(d) for fold, d in sorted(folds.items())}}
    path.write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
