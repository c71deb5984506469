"""Novelty: how far to trust the TRM on an alert unlike its training data.

The halting head's temperature is fitted on val, whose names are the training names. On a project
the model never saw it is as sure of a wrong answer as of a right one: trained without a fold of
source projects and scored on exactly those, its ECE was 0.09 to 0.16, mostly alerts read as a
confident `escalate` that a function fits.

So such an alert's confidence comes from a second map: a logistic over the halting logit, the
share of the name's words that training names used, whether the answer is `escalate`, how
familiar the alert's sentence embedding is (`predict.py`), and, for an `escalate`, whether the
catalog would let any action act on the alert (`escalate_contested`: the gates refuse it not and the
labels fill its parameters). On held-out sources that is what told a sure `escalate` from a guess:
where no action could act, a human is the only answer; where one could (a homelab's
`GatusEndpointDown` with a namespace and a service, pod-check-status), the model's `escalate` was
wrong as often as not, and it abstains there. An action's own confidence does not read it: the
chain asks the TRM to confirm other selectors' actions, and more than one action can fit an alert.

The map is fitted on held-out real sources, never on the model's own training data: each fold
model is scored on its fold's held-out lines (`answers.py`, `agent-sre trm calibrate --on
FOLD=DIR`). A fold model takes its map from the other folds (`--cross`), so the benchmark stays
honest; the shipped model takes it from all of them.
The draws differ from the benchmark's: another seed and the training value pools.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from pathlib import Path

from ..retrieval.calibration import Logistic, fit_logistic
from ..schemas.alert import Alert
from ..schemas.catalog import ESCALATE, Catalog
from .encode import CAMEL_WORD
from .export import CONFIG

FEATURES = ("halt_logit", "known_words", "escalate", "familiarity", "escalate_contested")
CALIBRATION_SEED = 7  # not the benchmark's TEST_SEED


def name_vocabulary(names: Iterable[str]) -> frozenset[str]:
    return frozenset(word.lower() for name in names for word in CAMEL_WORD.findall(name))


def features(
    alert: Alert, function: str, halt_logit: float, vocabulary: frozenset[str], familiarity: float = 1.0,
    admissible: Collection[str] | None = None,
) -> dict[str, float]:
    """The map's inputs. `admissible`: the actions the catalog and the gates allow on the alert
    (`Gates.admissible`); None, not known, counts as room for an action."""
    words = [word.lower() for word in CAMEL_WORD.findall(alert.alertname)]
    return {
        "halt_logit": halt_logit,
        "known_words": sum(word in vocabulary for word in words) / len(words) if words else 0.0,
        "escalate": float(function == ESCALATE),
        "familiarity": familiarity,
        "escalate_contested": float(function == ESCALATE and (admissible is None or bool(admissible))),
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
