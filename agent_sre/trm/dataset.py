"""Generated examples as tensors, and the fixed splits every run and the evaluation gate share."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from ..schemas.catalog import Catalog
from .encode import EncoderConfig, encode_alert, targets_for
from ..knowledge.generate import Example, generate
from ..knowledge.real import RENAMED_SHARE, load_real_alerts, real_examples
from ..knowledge.runbook import load_runbook
from ..knowledge.sources import held_out

# The test split is generated from the runbook's held-out names with this seed, always, so that
# scores of different runs (and the shipped model's) are comparable.
TEST_SEED = 20251004


@dataclass
class Tensors:
    features: torch.Tensor  # (N, L, F) hashed piece ids
    roles: torch.Tensor  # (N, L)
    functions: torch.Tensor  # (N,)
    pointers: torch.Tensor  # (N, slots), IGNORE past the function's parameters

    def __len__(self) -> int:
        return self.functions.shape[0]

    def take(self, index: torch.Tensor) -> Tensors:
        return Tensors(self.features[index], self.roles[index], self.functions[index], self.pointers[index])


def encode_examples(
    examples: list[Example], catalog: Catalog, config: EncoderConfig, jitter: random.Random | None = None
) -> Tensors:
    features, roles, functions, pointers = [], [], [], []
    for example in examples:
        encoded = encode_alert(example.alert, config, jitter)
        function, slots = targets_for(example.alert, example.function, encoded, catalog, config)
        features.append(encoded.features)
        roles.append(encoded.roles)
        functions.append(function)
        pointers.append(slots)
    return Tensors(
        torch.tensor(features, dtype=torch.long),
        torch.tensor(roles, dtype=torch.long),
        torch.tensor(functions, dtype=torch.long),
        torch.tensor(pointers, dtype=torch.long),
    )


def build_splits(
    catalog: Catalog,
    config: EncoderConfig,
    seed: int,
    per_pattern: int,
    runbook: Path | None = None,
    real_per_alert: int = 0,
    hold_out: str | None = None,
) -> dict[str, tuple[list[Example], Tensors]]:
    """train and val (same alert names, different draws) and test (held-out runbook names, fixed seed).

    train and val also hold `real_per_alert` (a quarter of it for val) alerts per line of the real-alert
    knowledge, without the lines of the `hold_out` fold's source projects (`knowledge/sources.py`);
    a `RENAMED_SHARE` of the active lines' alerts carry an app's word in their name.
    """
    entries = load_runbook(runbook, functions=catalog.names)
    real = load_real_alerts()
    if hold_out is not None:
        real, _ = held_out(real, hold_out)
    real = [line for line in real if line.action in catalog.by_name]
    splits = {
        "train": generate(entries, catalog, "train", per_pattern, seed)
        + real_examples(real, real_per_alert, seed, renamed=RENAMED_SHARE),
        "val": generate(entries, catalog, "val", max(2, per_pattern // 8), seed)
        + real_examples(real, max(1, real_per_alert // 4) if real_per_alert else 0, seed + 1, renamed=RENAMED_SHARE),
        "test": generate(entries, catalog, "test", 24, TEST_SEED),
    }
    jitter = {"train": random.Random(seed)}  # only training alerts get scattered label slots
    return {
        name: (examples, encode_examples(examples, catalog, config, jitter.get(name)))
        for name, examples in splits.items()
    }
