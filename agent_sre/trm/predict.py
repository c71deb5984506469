"""Alerts in, decisions out: encode, run the recursion with early halting, copy the parameters."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..schemas.alert import Alert
from ..schemas.catalog import Catalog
from .encode import EncodedAlert, EncoderConfig, decode_parameters, encode_alert
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
        features = torch.tensor([e.features for e in encoded], dtype=torch.long)
        roles = torch.tensor([e.roles for e in encoded], dtype=torch.long)
        outputs, steps = self.model.infer(features, roles)
        functions, pointers = outputs.predictions()
        confidence = self.model.confidence(outputs)
        return [
            self._prediction(alert, enc, int(function), slots.tolist(), float(conf), int(used))
            for alert, enc, function, slots, conf, used in zip(alerts, encoded, functions, pointers, confidence, steps)
        ]

    def _prediction(
        self, alert: Alert, encoded: EncodedAlert, function: int, pointers: list[int], confidence: float, steps: int
    ) -> Prediction:
        name = self.encoder.functions[function]
        # A catalog overridden by config may lack a function the model knows: then nothing is copied.
        parameters = decode_parameters(alert, name, pointers, encoded, self.catalog) if name in self.catalog.by_name else {}
        return Prediction(name, parameters, confidence, steps)
