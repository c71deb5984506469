"""Generated examples as tensors, and the fixed splits every run and the evaluation gate share."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..schemas.catalog import Catalog
from .encode import EncoderConfig, encode_alert, targets_for
from ..knowledge.generate import Example, generate
from ..knowledge.real import RENAMED_SHARE, load_real_alerts, real_examples
from ..knowledge.runbook import load_runbook
from ..knowledge.sources import held_out
from .sentences import SentenceMemo

# The test split is generated from the runbook's held-out names with this seed, always, so that
# scores of different runs (and the shipped model's) are comparable.
TEST_SEED = 20251004


@dataclass
class Tensors:
    features: torch.Tensor  # (N, L, F) hashed piece ids
    roles: torch.Tensor  # (N, L)
    functions: torch.Tensor  # (N,)
    pointers: torch.Tensor  # (N, slots), IGNORE past the function's parameters
    sentences: torch.Tensor  # (N, E) the alerts' sentence embeddings; E = 0 for a model without them

    def __len__(self) -> int:
        return self.functions.shape[0]

    def take(self, index: torch.Tensor) -> Tensors:
        return Tensors(self.features[index], self.roles[index], self.functions[index], self.pointers[index],
                       self.sentences[index])

    @property
    def sentence(self) -> torch.Tensor | None:
        """What the model's `sentence` argument takes: None when there are no embeddings."""
        return self.sentences if self.sentences.shape[1] else None


def encode_examples(
    examples: list[Example], catalog: Catalog, config: EncoderConfig, jitter: random.Random | None = None,
    memo: SentenceMemo | None = None,
) -> Tensors:
    features, roles, functions, pointers = [], [], [], []
    for example in examples:
        encoded = encode_alert(example.alert, config, jitter)
        function, slots = targets_for(example.alert, example.function, encoded, catalog, config)
        features.append(encoded.features)
        roles.append(encoded.roles)
        functions.append(function)
        pointers.append(slots)
    sentences = memo.embed([e.alert for e in examples]) if memo is not None else np.zeros((len(examples), 0), np.float32)
    return Tensors(
        torch.tensor(features, dtype=torch.long),
        torch.tensor(roles, dtype=torch.long),
        torch.tensor(functions, dtype=torch.long),
        torch.tensor(pointers, dtype=torch.long),
        torch.from_numpy(np.ascontiguousarray(sentences, dtype=np.float32)),
    )


def build_splits(
    catalog: Catalog,
    config: EncoderConfig,
    seed: int,
    per_pattern: int,
    runbook: Path | None = None,
    real_per_alert: int = 0,
    hold_out: str | None = None,
    early_stop: str | None = None,
    memo: SentenceMemo | None = None,
) -> dict[str, tuple[list[Example], Tensors]]:
    """train and val (same alert names, different draws) and test (held-out runbook names, fixed seed).

    train and val also hold `real_per_alert` (a quarter of it for val) alerts per line of the real-alert
    knowledge, without the lines of the `hold_out` fold's source projects (`knowledge/sources.py`);
    a `RENAMED_SHARE` of the active lines' alerts carry an app's word in their name. With
    `early_stop`, that fold's sources are taken out of train and val too, into a split of their own
    (`sources`): alerts of projects the model never learned from, to pick the checkpoint on.
    The real alerts are drawn from every line and then filtered, so a line's alerts are the same
    whichever fold is held out (and their embeddings are memoised once for every fold). With a
    `memo`, every split carries its alerts' sentence embeddings.
    """
    entries = load_runbook(runbook, functions=catalog.names)
    real = [line for line in load_real_alerts() if line.action in catalog.by_name]
    learn = real if hold_out is None else held_out(real, hold_out)[0]
    stop: list = []
    if early_stop is not None:
        learn, stop = held_out(learn, early_stop)
    lines = {_line(entry.source, entry.alert) for entry in learn}

    def drawn(per_alert: int, draw_seed: int) -> list[Example]:
        return [e for e in real_examples(real, per_alert, draw_seed, renamed=RENAMED_SHARE) if e.family in lines]

    splits = {
        "train": generate(entries, catalog, "train", per_pattern, seed) + drawn(real_per_alert, seed),
        "val": generate(entries, catalog, "val", max(2, per_pattern // 8), seed)
        + drawn(max(1, real_per_alert // 4) if real_per_alert else 0, seed + 1),
        "test": generate(entries, catalog, "test", 24, TEST_SEED),
    }
    if stop:
        splits["sources"] = real_examples(stop, max(1, real_per_alert // 3), seed + 2, pools="test")
    jitter = {"train": random.Random(seed)}  # only training alerts get scattered label slots
    return {
        name: (examples, encode_examples(examples, catalog, config, jitter.get(name), memo))
        for name, examples in splits.items()
    }


def _line(source: str, alert: str) -> str:
    """How `real_examples` tags each example with the knowledge line it was drawn from."""
    return f"{source}:{alert}"
