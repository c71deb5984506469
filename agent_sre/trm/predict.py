"""Alerts in, decisions out: encode, run the recursion with early halting, copy the parameters.

The name check. On alert names it never saw, the halting head is as sure of a wrong answer as of a
right one when the answer hangs on one word of the name (`NodeRAIDDiskFailure` read as a disk
alert). So each alert whose name has several words is also read once without each of them, in the
same batch, and the confidence is the halting head's times the share of readings that agree on
the function. An answer that one word of the name flips falls below the chain's threshold, and
the next selector decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..schemas.alert import Alert
from ..schemas.catalog import Catalog
from .encode import EncodedAlert, EncoderConfig, decode_parameters, encode_alert, name_words
from .export import load_model
from .model import TRM


@dataclass(frozen=True)
class Prediction:
    function: str
    parameters: dict[str, str]  # copied from the alert's labels; never anything else
    confidence: float  # the halting head's probability that the answer is fully right
    steps: int  # supervision steps used before halting


class Predictor:
    def __init__(self, model: TRM, encoder: EncoderConfig, catalog: Catalog) -> None:
        self.model, self.encoder, self.catalog = model, encoder, catalog

    @classmethod
    def load(cls, catalog: Catalog, directory: Path | None = None) -> Predictor:
        model, encoder, _ = load_model(directory)
        return cls(model, encoder, catalog)

    def predict(self, alerts: list[Alert]) -> list[Prediction]:
        encoded = [encode_alert(alert, self.encoder) for alert in alerts]
        variants = [
            [encode_alert(alert, self.encoder, drop_name_word=i) for i in range(len(words))] if len(words) > 1 else []
            for alert in alerts
            for words in [name_words(alert, self.encoder)]
        ]
        outputs, steps = self.model.infer(*_tensors(encoded))
        functions, pointers = outputs.predictions()
        confidence = self.model.confidence(outputs)
        readings = self._readings(variants, steps.tolist())
        predictions = []
        for row, (alert, enc) in enumerate(zip(alerts, encoded)):
            function = int(functions[row])
            others = readings[row]
            agreement = (1 + others.count(function)) / (1 + len(others))
            conf = float(confidence[row]) * agreement
            predictions.append(self._prediction(alert, enc, function, pointers[row].tolist(), conf, int(steps[row])))
        return predictions

    def _readings(self, variants: list[list[EncodedAlert]], steps: list[int]) -> list[list[int]]:
        """The function each variant reads, after exactly as many steps as its alert took (its own
        halting does not matter); alerts that took the same number of steps share one batch."""
        readings: list[list[int]] = [[] for _ in variants]
        for used in sorted(set(steps)):
            rows = [row for row, s in enumerate(steps) if s == used and variants[row]]
            flat = [v for row in rows for v in variants[row]]
            if not flat:
                continue
            outputs, _ = self.model.infer(*_tensors(flat), max_steps=used, halt_threshold=2.0)
            functions = outputs.function_logits.argmax(-1).tolist()
            for row in rows:
                readings[row], functions = functions[: len(variants[row])], functions[len(variants[row]) :]
        return readings

    def _prediction(
        self, alert: Alert, encoded: EncodedAlert, function: int, pointers: list[int], confidence: float, steps: int
    ) -> Prediction:
        name = self.encoder.functions[function]
        # A catalog overridden by config may lack a function the model knows: then nothing is copied.
        parameters = decode_parameters(alert, name, pointers, encoded, self.catalog) if name in self.catalog.by_name else {}
        return Prediction(name, parameters, confidence, steps)


def _tensors(encoded: list[EncodedAlert]) -> tuple[torch.Tensor, torch.Tensor]:
    features = torch.tensor([e.features for e in encoded], dtype=torch.long)
    return features, torch.tensor([e.roles for e in encoded], dtype=torch.long)
