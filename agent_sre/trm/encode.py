"""The alert as a fixed-length token sequence, and the answer as a function plus label pointers.

Encoding choice. Every position of the sequence is one *word-like unit* of the alert, embedded
as the sum of the embeddings of up to `features` hashed pieces (fastText style):
- the whole lower-cased word, and its character trigrams with `<` `>` boundary marks, so an
  alert name the model never saw (`ContainerNotReady`) still shares most pieces with ones it saw
  (`KubeContainerWaiting`, `PodNotReady`), and a typo or new word degrades gracefully;
- numbers become sign and log-magnitude buckets (`+37%` -> `num`, `sign+`, `mag6`), so metric
  context such as a request-rate change is comparable across values; a signed percentage and a
  word that says which way something moves (`rising`, `steady`, `dropping`) also get a shared
  direction piece (`trend+`, `trend=`, `trend-`), so the trend reads the same in any phrasing;
- a label is one position: its key (whole and split on `_`, so `exported_namespace` is close to
  `namespace`), a shape mark for its value, and the value's words.
Pieces are hashed with CRC32 into `buckets` rows; no vocabulary file can go stale, and the
exported "vocabulary" is this recipe plus the function and slot names (see `EncoderConfig`).

Layout (48 positions by default), each position also tagged with its role:
    [CLS] [alertname words x6] [labels x14] [context annotations x6] [summary/description words x21]
Labels that can carry a catalog parameter come first, then severity, then the rest by name, so
truncation never drops a parameter's source.

Target: the catalog function, and for each of the function's parameter slots (in catalog
order) the *position* of the label whose value fills it, or 0 (the CLS position) for "none".
Decoding copies the value from that label through the catalog source's transform and checks the
parameter's pattern, so a value can only ever come from the alert itself.
"""

from __future__ import annotations

import random
import re
import sys
import zlib
from dataclasses import asdict, dataclass

from ..schemas.alert import Alert
from ..schemas.catalog import Catalog, ParameterSpec

PAD, CLS, NAME, LABEL, CONTEXT, TEXT = range(6)
ROLES = 6
IGNORE = -100  # a slot the function does not have: no loss
NONE_POINTER = 0

_TEXT_ANNOTATIONS = ("summary", "description", "message")
_SKIPPED_ANNOTATIONS = frozenset({"runbook_url", "runbook", "dashboard", "lambda_function", "lambda_parameters"})
CAMEL_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
# a number standing alone (`+37%`, `(1200`), else a run of letters and digits; the `-515` inside the pod
# name `api-515d565-c42bh` is not a negative number
_TEXT_WORD = re.compile(r"(?<![\w.-])[+-]?\d+(?:\.\d+)?%?(?![\w.-])|[A-Za-z0-9]+")
_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?%?\Z")  # \Z: `$` would let `12%\n` through to float()
_VALUE_SPLIT = re.compile(r"[-_.:/@ =]+")
_DNS = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Words that say which way a metric moves share one piece per direction, as a signed percentage
# does (`+150%` goes up, `+3%` is flat), so "traffic is surging" and "rps_change: +80%" look alike.
FLAT_CHANGE_PCT = 10.0
NAME_WORD_DROP = 0.35  # training only: the share of alert names that lose one word
_TREND_WORDS = {
    **dict.fromkeys(["growing", "rising", "increasing", "increased", "up", "spiking", "climbing", "surging",
                     "doubled", "tripled", "higher"], "+"),
    **dict.fromkeys(["flat", "steady", "stable", "unchanged", "normal", "constant", "usual"], "="),
    **dict.fromkeys(["falling", "dropping", "decreasing", "decreased", "down", "lower", "halved"], "-"),
}


@dataclass(frozen=True)
class EncoderConfig:
    name_tokens: int = 6
    label_tokens: int = 14
    context_tokens: int = 6
    text_tokens: int = 21
    features: int = 16  # hashed pieces per position
    buckets: int = 16384  # rows of the piece embedding table; row 0 is padding
    functions: tuple[str, ...] = ()
    slots: int = 3  # the most parameters any catalog function has

    @property
    def seq_len(self) -> int:
        return 1 + self.name_tokens + self.label_tokens + self.context_tokens + self.text_tokens

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_catalog(cls, catalog: Catalog, **overrides: object) -> EncoderConfig:
        slots = max(len(f.parameters) for f in catalog.functions)
        return cls(functions=tuple(catalog.names), slots=slots, **overrides)  # type: ignore[arg-type]


@dataclass(frozen=True)
class EncodedAlert:
    features: list[list[int]]  # (L, F) hashed piece ids, 0 = padding
    roles: list[int]  # (L,)
    label_keys: list[str | None]  # (L,) the label at each LABEL position


def name_words(alert: Alert, config: EncoderConfig) -> list[str]:
    return CAMEL_WORD.findall(alert.alertname)[: config.name_tokens]


def encode_alert(
    alert: Alert, config: EncoderConfig, jitter: random.Random | None = None
) -> EncodedAlert:
    """With `jitter` (training only), empty slots are scattered between the labels, so the model
    learns to read a label wherever it sits rather than from the slot it usually gets, and a third
    of the alert names lose one word, so no single word of a name it knows decides on its own (an
    unseen name such as `KubernetesJobFailed` shares only some words with the known ones)."""
    positions: list[tuple[int, list[str], str | None]] = [(CLS, ["cls"], None)]
    names = name_words(alert, config)
    if jitter is not None and len(names) > 1 and jitter.random() < NAME_WORD_DROP:
        del names[jitter.randrange(len(names))]
    positions += [(NAME, _word_pieces(w), None) for w in names]
    positions += _pad(len(names), config.name_tokens)
    keys = sorted((k for k in alert.labels if k != "alertname"), key=_label_priority)[: config.label_tokens]
    labels = [(LABEL, _pair_pieces(k, alert.labels[k]), k) for k in keys] + _pad(len(keys), config.label_tokens)
    if jitter is not None:
        for _ in range(jitter.randrange(config.label_tokens - len(keys) + 1)):
            labels.insert(jitter.randrange(len(labels)), labels.pop())  # move a trailing PAD inside
    positions += labels
    context = [k for k in sorted(alert.annotations) if k not in _TEXT_ANNOTATIONS and k not in _SKIPPED_ANNOTATIONS]
    context = context[: config.context_tokens]
    positions += [(CONTEXT, _pair_pieces(k, alert.annotations[k]), None) for k in context]
    positions += _pad(len(context), config.context_tokens)
    text = " ".join(alert.annotations.get(k, "") for k in _TEXT_ANNOTATIONS)
    words = _TEXT_WORD.findall(text)[: config.text_tokens]
    positions += [(TEXT, _word_pieces(w), None) for w in words]
    positions += _pad(len(words), config.text_tokens)
    return EncodedAlert(
        features=[_hash_pieces(pieces, config) for _, pieces, _ in positions],
        roles=[role for role, _, _ in positions],
        label_keys=[key for _, _, key in positions],
    )


def targets_for(alert: Alert, function: str, encoded: EncodedAlert, catalog: Catalog, config: EncoderConfig) -> tuple[int, list[int]]:
    """The function's index and one pointer per slot: the position of the label the catalog
    would take the value from, NONE_POINTER when no label can supply it, IGNORE past its slots."""
    spec = catalog.by_name[function]
    pointers = [IGNORE] * config.slots
    for slot, param in enumerate(spec.parameters):
        pointers[slot] = NONE_POINTER
        for source in param.sources:
            key = source.partition(":")[0]
            if key in encoded.label_keys and copy_value(param, source, alert) is not None:
                pointers[slot] = encoded.label_keys.index(key)
                break
    return config.functions.index(function), pointers


def decode_parameters(alert: Alert, function: str, pointers: list[int], encoded: EncodedAlert, catalog: Catalog) -> dict[str, str]:
    """Copy each parameter from the label its pointer names; drop it when that label is not one of
    the parameter's catalog sources or its value fails the pattern. Nothing else is ever used."""
    parameters: dict[str, str] = {}
    for param, position in zip(catalog.by_name[function].parameters, pointers):
        key = encoded.label_keys[position] if 0 < position < len(encoded.label_keys) else None
        source = next((s for s in param.sources if key is not None and s.partition(":")[0] == key), None)
        value = copy_value(param, source, alert) if source else None
        if value is not None:
            parameters[param.name] = value
    return parameters


def copy_value(param: ParameterSpec, source: str, alert: Alert) -> str | None:
    """What `source` yields for this alert through the catalog's own transform, if it fits the pattern."""
    return param.model_copy(update={"sources": [source], "default": None}).resolve(alert)


def _label_priority(key: str) -> tuple[int, str]:
    order = _PARAMETER_LABELS.get(key)
    if order is not None:
        return (0, f"{order:03d}")
    return (1 if key == "severity" else 2, key)


# Every label any catalog parameter may come from (the default catalog's sources, in order).
_PARAMETER_LABELS = {
    key: i
    for i, key in enumerate(
        ["name", "certificate", "exported_namespace", "namespace", "pod", "deployment", "statefulset", "daemonset",
         "horizontalpodautoscaler", "persistentvolumeclaim", "job_name", "node", "instance", "service", "job",
         "reason", "type", "replicas"]
    )
}


def _pad(used: int, size: int) -> list[tuple[int, list[str], str | None]]:
    return [(PAD, [], None)] * (size - used)


def _word_pieces(word: str) -> list[str]:
    if _NUMBER.match(word):
        return _number_pieces(word)
    lower = word.lower()
    marked = f"<{lower}>"
    trend = [f"trend{_TREND_WORDS[lower]}"] if lower in _TREND_WORDS else []
    return [f"w:{lower}"] + trend + [f"g:{marked[i:i + 3]}" for i in range(len(marked) - 2)]


def _number_pieces(word: str) -> list[str]:
    value = float(word.rstrip("%"))
    # log2 buckets: 0, 1, 2-3, 4-7, ...; four hundred digits read as infinity, the largest bucket
    magnitude = int(min(abs(value), sys.float_info.max)).bit_length()
    sign = "-" if value < 0 else "+" if word.startswith("+") else "="
    pieces = ["num", f"sign{sign}", f"mag{magnitude}", f"num{sign}{magnitude}"]
    if word.endswith("%"):
        pieces.append("pct")
        if sign != "=":  # a signed percentage is a change: say which way, as the trend words do
            pieces.append("trend=" if abs(value) < FLAT_CHANGE_PCT else f"trend{sign}")
    return pieces


def _pair_pieces(key: str, value: str) -> list[str]:
    pieces = [f"k:{key}"] + [f"kp:{part}" for part in key.lower().split("_") if part]
    pieces.append("v:dns" if _DNS.match(value) else "v:other")
    if _NUMBER.match(value):
        return pieces + _number_pieces(value)  # keep the sign of `-40%`
    for word in [w for w in _VALUE_SPLIT.split(value) if w][:4]:
        pieces += _word_pieces(word)
    return pieces


def _hash_pieces(pieces: list[str], config: EncoderConfig) -> list[int]:
    ids = [zlib.crc32(p.encode()) % (config.buckets - 1) + 1 for p in pieces[: config.features]]
    return ids + [0] * (config.features - len(ids))
