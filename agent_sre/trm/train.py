"""Training: deep supervision with a rolling batch, EMA weights, resumable checkpoints.

The batch works like the paper's: every row carries its own (y, z) and step count, runs one
supervision step (one optimiser step) at a time, and is replaced by a fresh example when its
halting head says "done" (or after N_sup steps). Easy alerts leave after one step, so the
compute goes to the hard ones. With probability `explore`, a row must take a random minimum
number of steps first, so the halting head also learns what later steps are worth.
"""

from __future__ import annotations

import copy
import json
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..schemas.catalog import ESCALATE, Catalog
from ..retrieval.embedder import shared_embedder
from .dataset import Tensors, build_splits
from .encode import EncoderConfig
from .evaluate import evaluate, fit_temperature, score
from .export import ema_copy, ema_update, save_model
from .model import TRM, TRMConfig, fully_correct
from .sentences import SentenceMemo

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainConfig:
    seed: int = 0
    per_pattern: int = 40  # generated alerts per runbook alert name
    real_per_alert: int = 6  # generated alerts per line of the real-alert knowledge
    hold_out: str | None = None  # a fold of source projects to leave out (knowledge/sources.py)
    # A fold of source projects kept out of training to pick the checkpoint on: the EMA model that
    # does best on projects it never saw is the one exported.
    early_stop: str | None = None
    sentences: bool = True  # read the alert's MiniLM sentence embedding (model.py)
    batch_size: int = 32
    steps: int = 2000  # optimiser steps, one per supervision step
    lr: float = 2e-3  # far above the paper's 1e-4: a tiny model and a 30-minute CPU budget
    warmup: int = 150
    final_lr_ratio: float = 0.1  # cosine decay from lr to lr * this at the last step
    weight_decay: float = 0.1
    ema: float = 0.995
    grad_clip: float = 1.0
    explore: float = 0.1
    eval_every: int = 500
    threads: int = 2
    model: dict[str, Any] = field(default_factory=dict)  # TRMConfig overrides


def train(
    catalog: Catalog, config: TrainConfig, out_dir: Path, resume: bool = True, quiet: bool = False,
    memo_path: Path | None = None,
) -> dict[str, Any]:
    """Train, checkpointing into `out_dir`; export the EMA model there; return its metrics.
    `memo_path`: where the training alerts' sentence embeddings are memoised across runs."""
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    encoder = EncoderConfig.from_catalog(catalog)
    memo = SentenceMemo(memo_path, shared_embedder()) if config.sentences else None
    model_config = TRMConfig(
        seq_len=encoder.seq_len, features=encoder.features, buckets=encoder.buckets,
        functions=len(encoder.functions), slots=encoder.slots,
        sentence_dim=memo.embedder.dimension if memo else 0, **config.model,
    )
    splits = build_splits(
        catalog, encoder, config.seed, config.per_pattern, real_per_alert=config.real_per_alert,
        hold_out=config.hold_out, early_stop=config.early_stop, memo=memo,
    )
    train_data, escalate = splits["train"][1], encoder.functions.index(ESCALATE)
    model = TRM(model_config)
    ema = ema_copy(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.95), weight_decay=config.weight_decay)
    step, best, chosen = 0, None, None  # chosen: (score on unseen sources, step, EMA weights)
    checkpoint_path = out_dir / CHECKPOINT
    if resume and checkpoint_path.exists():
        state = torch.load(checkpoint_path, weights_only=False)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        step, best, chosen = state["step"], state["best"], state.get("chosen")
    batch = RollingBatch(model, train_data, config, step)
    progress = tqdm(total=config.steps, initial=step, disable=quiet, desc="trm train", unit="step")
    while step < config.steps:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        loss, accuracy = batch.step()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema_update(ema, model, config.ema)
        step += 1
        progress.update(1)
        progress.set_postfix(loss=f"{loss:.3f}", correct=f"{accuracy:.2f}")
        if step % config.eval_every == 0 or step == config.steps:
            best = evaluate(ema, splits["val"][1], escalate)
            progress.write(f"step {step}: val {json.dumps({k: round(v, 4) for k, v in best.items()})}")
            if "sources" in splits:
                unseen = evaluate(ema, splits["sources"][1], escalate)
                progress.write(f"step {step}: unseen sources {json.dumps({k: round(v, 4) for k, v in unseen.items()})}")
                if chosen is None or score(unseen) >= chosen[0]:
                    chosen = (score(unseen), step, copy.deepcopy(ema.state_dict()))
            out_dir.mkdir(parents=True, exist_ok=True)
            state = {"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
                     "model_config": model_config.to_dict(), "train_config": asdict(config), "step": step,
                     "best": best, "chosen": chosen}
            torch.save(state, checkpoint_path)
    progress.close()
    if chosen is not None:
        ema.load_state_dict(chosen[2])
        progress.write(f"exporting the EMA model of step {chosen[1]}: best on the unseen sources {config.early_stop}")
    ema.config.halt_temperature = fit_temperature(ema, splits["val"][1])
    metrics = {name: evaluate(ema, data, escalate) for name, (_, data) in splits.items() if name != "train"}
    answers = trained_answers(splits["train"][0], splits["train"][1], encoder)
    # Trained names keep the halting head's confidence for the answers they were trained with; other
    # names and answers get the novelty map.
    info = {"train_config": asdict(config), "metrics": metrics, "step": step, "trained_names": sorted(answers),
            "trained_answers": answers,
            "exported_step": chosen[1] if chosen else step}
    names = prototypes(splits["train"][0], splits["train"][1]) if memo else None
    if names is not None:
        # As familiar as 95% of the val alerts (training's names, other draws): below it, an alert is
        # unlike what the model learned from, even under a name it knows (predict.py).
        nearest = (splits["val"][1].sentences @ names.T).max(-1).values
        info["familiar_floor"] = round(float(torch.quantile(nearest, 0.05)), 4)
    save_model(out_dir, ema, encoder, info, names)
    return metrics


def trained_answers(examples: list, data: Tensors, encoder: EncoderConfig) -> dict[str, list[str]]:
    """Each alert name trained on, with the answers it was trained to give (its labels decide which)."""
    found: dict[str, set[str]] = {}
    for example, function in zip(examples, data.functions.tolist()):
        found.setdefault(example.alert.alertname, set()).add(encoder.functions[function])
    return {name: sorted(functions) for name, functions in sorted(found.items())}


def prototypes(examples: list, data: Tensors) -> torch.Tensor:
    """(names, E): the mean sentence embedding of each alert name trained on, unit length. How near
    an alert comes to the nearest of them is how familiar it is (`predict.py`)."""
    index: dict[str, list[int]] = {}
    for row, example in enumerate(examples):
        index.setdefault(example.alert.alertname, []).append(row)
    means = torch.stack([data.sentences[rows].mean(0) for rows in index.values()])
    return torch.nn.functional.normalize(means, dim=-1)


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up, then a cosine decay to `final_lr_ratio` of the peak."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * (config.final_lr_ratio + (1 - config.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


class RollingBatch:
    """`batch_size` rows, each an example mid-way through its supervision steps."""

    def __init__(self, model: TRM, data: Tensors, config: TrainConfig, step: int) -> None:
        self.model, self.data, self.config = model, data, config
        self.random = random.Random(f"{config.seed}/{step}")  # a resumed run draws afresh
        self.order: list[int] = []
        size = config.batch_size
        self.index = torch.tensor([self._next() for _ in range(size)])
        self.y, self.z = model.initial_carry(size)
        self.used = torch.zeros(size, dtype=torch.long)
        self.minimum = torch.tensor([self._minimum() for _ in range(size)])

    def step(self) -> tuple[float, float]:
        """One supervision step with backward; rows that halted are replaced. Returns loss, accuracy."""
        batch = self.data.take(self.index)
        (self.y, self.z), outputs, loss = self.model(
            batch.features, batch.roles, (self.y, self.z), (batch.functions, batch.pointers), sentence=batch.sentence
        )
        assert loss is not None
        loss.backward()
        self.used += 1
        with torch.no_grad():
            accuracy = float(fully_correct(outputs, batch.functions, batch.pointers).float().mean())
            halted = ((outputs.halt_logits > 0) & (self.used >= self.minimum)) | (self.used >= self.model.config.N_sup)
        for row in halted.nonzero().flatten().tolist():
            self.index[row] = self._next()
            self.y[row], self.z[row] = self.model.y_init, self.model.z_init
            self.used[row] = 0
            self.minimum[row] = self._minimum()
        return float(loss), accuracy

    def _next(self) -> int:
        if not self.order:
            self.order = list(range(len(self.data)))
            self.random.shuffle(self.order)
        return self.order.pop()

    def _minimum(self) -> int:
        if self.random.random() < self.config.explore:
            return self.random.randint(2, max(2, self.model.config.N_sup))
        return 1
