"""Alerts in, decisions out: encode, run the recursion with early halting, copy the parameters.

Confidence. For a name the model trained on, the halting head's probability (its temperature
fitted on val), as long as the alert is as familiar as training's own alerts (its sentence
embedding as near to a trained name's as 95% of val's: `familiar_floor`) and the answer is one
training gave that name (`trained_answers`). For any other alert,
the novelty map fitted on held-out real sources (`novelty.py`), when the model directory has one:
an unfamiliar project's alert gets the confidence such alerts earned there, so a sure-sounding but
unproven answer falls below the chain's threshold and the next selector is asked. A known name
with labels or words training never paired with it is such an alert too: the model has not seen
it, so its "escalate, 0.99" would be a guess.

Before the safety gates (`selectors/gates.py`), unseen names were read again without each word
of the name (the "name check"), so that an answer one word flipped lost confidence. The gates now
refuse what such an answer proposes (a RAID failure is never a full disk), and risky functions need
a second selector: on held-out real sources the check cost recall (fold `other`: 43% against 54%
for the TRM alone) and saved no wrong change, at two to three times the latency. It is gone.

Speed. The shared network (`net`, nearly all the compute) runs with int8 dynamic quantization of
its Linear layers; the embeddings and the heads stay fp32. Where the CPU has no quantized kernels
the model runs in fp32. Either way `net` runs as a TorchScript trace (`traced.py`): the same
outputs, without Python between its kernels.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ..retrieval.calibration import Logistic
from ..retrieval.embedder import shared_embedder
from ..schemas.alert import Alert
from ..schemas.catalog import Catalog
from .encode import EncodedAlert, EncoderConfig, decode_parameters, encode_alert
from .export import load_model, load_prototypes
from .model import TRM
from .novelty import features, name_vocabulary
from .sentences import embed_alerts
from .traced import traced

log = logging.getLogger(__name__)
Admissible = Callable[[Alert], Collection[str]]


@dataclass(frozen=True)
class Prediction:
    function: str
    parameters: dict[str, str]  # copied from the alert's labels; never anything else
    confidence: float  # the probability that the answer is fully right (see the module's docstring)
    steps: int  # supervision steps used before halting
    halt_logit: float  # the halting head's raw logit, which the novelty map is fitted on
    # cosine of the alert's sentence embedding to the nearest alert name trained on (1.0 for a
    # model without embeddings): how like its training data the alert is
    familiarity: float = 1.0
    # Nothing it learned speaks for the alert: no word of its name was in a training name, and its
    # sentence embedding is less familiar than training's own. The selector abstains on it.
    strange: bool = False
    like_training: bool = True  # its sentence embedding is as familiar as training's own (any name)
    # The actions the gates would allow on the alert, where the novelty map asked (None: not asked)
    admissible: tuple[str, ...] | None = None


class Predictor:
    def __init__(
        self,
        model: TRM,
        encoder: EncoderConfig,
        catalog: Catalog,
        trained_names: Iterable[str] = (),
        novelty: Logistic | None = None,
        prototypes: torch.Tensor | None = None,
        familiar_floor: float = 0.0,
        admissible: Admissible | None = None,
        trained_answers: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        self.model, self.encoder, self.catalog = model, encoder, catalog
        # The actions the gates would allow on an alert (the chain's `Gates.admissible`); without
        # it every alert counts as leaving room for another answer, the cautious reading.
        self.admissible = admissible
        self.trained_names = frozenset(trained_names)
        # What training taught each name (its answers there); a model exported without it: anything.
        self.trained_answers = {name: frozenset(functions) for name, functions in (trained_answers or {}).items()}
        self.vocabulary = name_vocabulary(self.trained_names)
        self.novelty = novelty
        self.prototypes = prototypes  # (names, E)
        self.familiar_floor = familiar_floor
        # The process's one MiniLM, shared with rag and fewshot: the alert is embedded once.
        self.embedder = shared_embedder() if model.config.sentence_dim else None

    @classmethod
    def load(
        cls, catalog: Catalog, directory: Path | None = None, quantize: bool = True, novelty: bool = True,
        admissible: Admissible | None = None,
    ) -> Predictor:
        """The model in `directory` (default: the shipped one); `novelty=False` ignores its novelty map."""
        model, encoder, info = load_model(directory)
        novel = Logistic.from_dict(info["novelty"]) if novelty and "novelty" in info else None
        model = traced(quantized(model) if quantize else model)
        return cls(model, encoder, catalog, info.get("trained_names", ()), novel,
                   load_prototypes(directory), info.get("familiar_floor", 0.0), admissible, info.get("trained_answers"))

    def predict(self, alerts: list[Alert]) -> list[Prediction]:
        encoded = [encode_alert(alert, self.encoder) for alert in alerts]
        sentence = torch.from_numpy(embed_alerts(alerts, self.embedder)) if self.embedder is not None else None
        outputs, steps = self.model.infer(*_tensors(encoded), sentence=sentence)
        functions, pointers = outputs.predictions()
        calibrated = self.model.confidence(outputs).tolist()
        familiar = (
            (sentence @ self.prototypes.T).max(-1).values.tolist()  # (B, names) -> (B,)
            if sentence is not None and self.prototypes is not None else [1.0] * len(alerts)
        )
        predictions = []
        for i, (alert, enc) in enumerate(zip(alerts, encoded)):
            name = self.encoder.functions[int(functions[i])]
            logit = float(outputs.halt_logits[i])
            confidence = calibrated[i]
            strange, allowed = False, None
            if self.novelty is not None and not self.familiar(alert, familiar[i], name):
                allowed = tuple(self.admissible(alert)) if self.admissible is not None else None
                values = features(alert, name, logit, self.vocabulary, familiar[i], allowed)
                confidence = self.novelty(values)
                strange = values["known_words"] == 0 and familiar[i] < self.familiar_floor
            # A catalog overridden by config may lack a function the model knows: then nothing is copied.
            parameters = (
                decode_parameters(alert, name, pointers[i].tolist(), enc, self.catalog)
                if name in self.catalog.by_name else {}
            )
            predictions.append(Prediction(name, parameters, confidence, int(steps[i]), logit, familiar[i], strange,
                                          familiar[i] >= self.familiar_floor, allowed))
        return predictions


    def familiar(self, alert: Alert, familiarity: float, function: str | None = None) -> bool:
        """Whether the halting head speaks for this alert: a name trained on, in a familiar form, and
        (given the answer) an answer training gave that name. A trained escalate name read as
        `scale-pod` because its labels came in a new combination is a new answer: the map judges it."""
        if alert.alertname not in self.trained_names or familiarity < self.familiar_floor:
            return False
        return function is None or function in self.trained_answers.get(alert.alertname, (function,))


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
