"""Alerts in, decisions out: encode, run the recursion with early halting, copy the parameters.

The name check. On alert names it never saw, the halting head is as sure of a wrong answer as of a
right one when the answer hangs on one word of the name (`NodeRAIDDiskFailure` read as a disk
alert). So an alert whose name the model was not trained on, and has several words, and that the
model reads as an active remediation, is read again once without each word, in one batch and for
as many supervision steps as the alert itself:
- the confidence is the halting head's times the share of readings that agree on the function, so
  an answer that one word of the name flips falls below the chain's threshold;
- when the answer is an active remediation but some reading says `escalate`, the answer becomes
  `escalate`, with the share of readings that say so as its confidence (safety over coverage: the
  chain's next selector decides when that share is low).
Names the model was trained on skip the check, and so does an alert the model reads as
`escalate`, already the safe answer: they cost one row. Only an
active answer for an unseen name is read again, with its variants, in a second batch.

Speed. The shared network (`net`, nearly all the compute) runs with int8 dynamic quantization of
its Linear layers; the embeddings and the heads stay fp32. On the 2-core machine that makes a
batch of 6 rows (an unseen five-word name) about 2.2x faster, with the same held-out scores
(BENCHMARKS.md). Where the CPU has no quantized kernels the model runs in fp32.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..schemas.alert import Alert
from ..schemas.catalog import ESCALATE, Catalog
from .encode import EncodedAlert, EncoderConfig, decode_parameters, encode_alert, name_words
from .export import load_model
from .model import TRM

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    function: str
    parameters: dict[str, str]  # copied from the alert's labels; never anything else
    confidence: float  # the halting head's probability that the answer is fully right, after the name check
    steps: int  # supervision steps used before halting


class Predictor:
    def __init__(
        self, model: TRM, encoder: EncoderConfig, catalog: Catalog, trained_names: Iterable[str] = ()
    ) -> None:
        self.model, self.encoder, self.catalog = model, encoder, catalog
        self.trained_names = frozenset(trained_names)
        self._escalate = encoder.functions.index(ESCALATE) if ESCALATE in encoder.functions else -1

    @classmethod
    def load(cls, catalog: Catalog, directory: Path | None = None, quantize: bool = True) -> Predictor:
        model, encoder, info = load_model(directory)
        return cls(quantized(model) if quantize else model, encoder, catalog, info.get("trained_names", ()))

    def predict(self, alerts: list[Alert]) -> list[Prediction]:
        encoded = [encode_alert(alert, self.encoder) for alert in alerts]
        readings = self._read(encoded, [[] for _ in alerts])
        # The name check guards active answers only: an alert read as `escalate` keeps its one row.
        checked = [(i, group) for i, reading in enumerate(readings)
                   if reading[0] != self._escalate and (group := self._variants(alerts[i]))]
        if checked:
            again = self._read([encoded[i] for i, _ in checked], [group for _, group in checked])
            for (i, _), reading in zip(checked, again):
                readings[i] = reading
        return [self._prediction(alert, enc, *reading) for alert, enc, reading in zip(alerts, encoded, readings)]

    def _read(
        self, encoded: list[EncodedAlert], variants: list[list[EncodedAlert]]
    ) -> list[tuple[int, list[int], float, int]]:
        """(function, pointers, confidence, steps) of each alert, read in one batch with its variants."""
        rows = encoded + [v for group in variants for v in group]
        leaders = list(range(len(encoded))) + [row for row, group in enumerate(variants) for _ in group]
        outputs, steps = self.model.infer(*_tensors(rows), leaders=torch.tensor(leaders))
        functions, pointers = outputs.predictions()
        confidence = self.model.confidence(outputs)
        others_all, offset = functions[len(encoded) :].tolist(), 0
        readings = []
        for row, group in enumerate(variants):
            function = int(functions[row])
            others, offset = others_all[offset : offset + len(group)], offset + len(group)
            conf = float(confidence[row]) * (1 + others.count(function)) / (1 + len(others))
            if function != self._escalate and self._escalate in others:
                function, conf = self._escalate, others.count(self._escalate) / (1 + len(others))
            readings.append((function, pointers[row].tolist(), conf, int(steps[row])))
        return readings

    def _variants(self, alert: Alert) -> list[EncodedAlert]:
        """The alert without each word of its name, for the name check; none for a trained name."""
        words = name_words(alert, self.encoder)
        if len(words) < 2 or alert.alertname in self.trained_names:
            return []
        return [encode_alert(alert, self.encoder, drop_name_word=i) for i in range(len(words))]

    def _prediction(
        self, alert: Alert, encoded: EncodedAlert, function: int, pointers: list[int], confidence: float, steps: int
    ) -> Prediction:
        name = self.encoder.functions[function]
        # A catalog overridden by config may lack a function the model knows: then nothing is copied.
        parameters = decode_parameters(alert, name, pointers, encoded, self.catalog) if name in self.catalog.by_name else {}
        return Prediction(name, parameters, confidence, steps)


def quantized(model: TRM) -> TRM:
    """A copy of `model` whose `net` Linear layers are int8 (dynamic quantization); `model` itself
    when this CPU's torch has no quantized engine."""
    if set(torch.backends.quantized.supported_engines) <= {"none"}:
        log.warning("TRM runs in fp32: this torch build has no quantized engine")
        return model
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization is marked deprecated; 2.13 has it
            return torch.ao.quantization.quantize_dynamic(model, {"net"}, dtype=torch.qint8)
    except (AttributeError, RuntimeError) as exc:
        log.warning("TRM runs in fp32: int8 quantization is not available here (%s)", exc)
        return model


def _tensors(encoded: list[EncodedAlert]) -> tuple[torch.Tensor, torch.Tensor]:
    features = torch.tensor([e.features for e in encoded], dtype=torch.long)
    return features, torch.tensor([e.roles for e in encoded], dtype=torch.long)
