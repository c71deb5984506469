"""Novelty: how far to trust the TRM on an alert unlike its training data.

The halting head's temperature is fitted on val, whose names are the training names. On a project
the model never saw it is as sure of a wrong answer as of a right one: trained without a fold of
source projects and scored on exactly those, its ECE was 0.09 to 0.16, mostly alerts read as a
confident `escalate` that a function fits.

So such an alert's confidence comes from a second map: a logistic over the halting logit, the
share of the name's words that training names used, whether the answer is `escalate`, and how
familiar the alert's sentence embedding is (`predict.py`). It is fitted on held-out real sources,
never on the model's own training data: each fold model is scored on its fold's held-out lines
(`answers.py`, `agent-sre trm calibrate --on FOLD=DIR`). A fold model takes its map from the other
folds (`--cross`), so the benchmark stays honest; the shipped model takes it from all of them.
The draws differ from the benchmark's: another seed and the training value pools.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

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
