"""The novelty map's training data: fold models' answers to the source projects they never saw.

Kept apart from `novelty.py`, which the predictor reads, so that neither imports the other.
"""

from __future__ import annotations

from pathlib import Path

from ..knowledge.real import expected_answer, load_real_alerts, real_examples
from ..knowledge.sources import held_out
from ..schemas.catalog import Catalog
from .novelty import CALIBRATION_SEED, Answers, features
from .predict import Admissible, Predictor


def held_out_answers(
    fold: str, directory: Path, catalog: Catalog, admissible: Admissible | None = None, per_alert: int = 2
) -> Answers:
    """A fold model's answers to its fold's held-out lines (the unfamiliar ones: the map's to judge).
    `admissible` is the gates' (`Gates.admissible`), as the selector will have it."""
    rows: list[dict[str, float]] = []
    right: list[bool] = []
    predictor = Predictor.load(catalog, directory, novelty=False)  # no map, so it asks the gates nothing
    _, test = held_out(load_real_alerts(), fold)
    examples = real_examples(test, per_alert, CALIBRATION_SEED, pools="train")
    for example, prediction in zip(examples, predictor.predict([e.alert for e in examples])):
        if predictor.familiar(example.alert, prediction.familiarity, prediction.function):
            continue
        allowed = admissible(example.alert) if admissible is not None else None
        rows.append(features(example.alert, prediction.function, prediction.halt_logit, predictor.vocabulary,
                             prediction.familiarity, allowed))
        right.append((prediction.function, prediction.parameters) == expected_answer(example, catalog))
    return rows, right
