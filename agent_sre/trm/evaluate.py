"""Scores of a model on one split: accuracy, parameter exact-match, calibration, safety."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..schemas.catalog import ESCALATE, Catalog
from .dataset import Tensors
from ..knowledge.generate import Example
from .model import TRM, fully_correct

if TYPE_CHECKING:
    from .predict import Predictor

CONFIDENCE_THRESHOLD = 0.7  # the chain's default threshold


def evaluate(
    model: TRM, data: Tensors, escalate_index: int, halt_threshold: float = 0.5, batch_size: int = 256
) -> dict[str, float]:
    """Run `model.infer` (ACT halting) over `data` and summarise what a deployment would see."""
    was_training = model.training
    model.eval()
    functions, correct, confidence, steps = [], [], [], []
    for start in range(0, len(data), batch_size):
        batch = data.take(torch.arange(start, min(start + batch_size, len(data))))
        outputs, used = model.infer(batch.features, batch.roles, halt_threshold=halt_threshold, sentence=batch.sentence)
        functions.append(outputs.function_logits.argmax(-1))
        correct.append(fully_correct(outputs, batch.functions, batch.pointers))
        confidence.append(model.confidence(outputs))
        steps.append(used)
    model.train(was_training)
    predicted = torch.cat(functions)
    escalate = data.functions == escalate_index
    return _scores(predicted == data.functions, torch.cat(correct), torch.cat(confidence), escalate,
                   predicted != escalate_index, torch.cat(steps).float())


def evaluate_predictor(predictor: Predictor, examples: list[Example], catalog: Catalog, batch_size: int = 128) -> dict[str, float]:
    """The same scores as `evaluate`, through `Predictor.predict`: what the `trm` selector decides,
    novelty map included. Exact-match: the function and the parameters the catalog resolves for it."""
    predictions = []
    for start in range(0, len(examples), batch_size):
        predictions += predictor.predict([e.alert for e in examples[start : start + batch_size]])
    return _scores(
        torch.tensor([p.function == e.function for p, e in zip(predictions, examples)]),
        torch.tensor([p.function == e.function and p.parameters == catalog.resolve(e.function, e.alert)
                      for p, e in zip(predictions, examples)]),
        torch.tensor([p.confidence for p in predictions]),
        torch.tensor([e.function == ESCALATE for e in examples]),
        torch.tensor([p.function != ESCALATE for p in predictions]),
        torch.tensor([float(p.steps) for p in predictions]),
    )


def _scores(
    function_right: torch.Tensor, right: torch.Tensor, confidence: torch.Tensor, escalate: torch.Tensor,
    active: torch.Tensor, steps: torch.Tensor,
) -> dict[str, float]:
    """The summary both evaluations report; every argument is (N,), one row per alert."""
    right = right.float()
    confident = confidence >= CONFIDENCE_THRESHOLD
    return {
        "examples": float(len(right)),
        "function_accuracy": float(function_right.float().mean()),
        "parameter_exact_match": float(right.mean()),
        "coverage_at_0.7": float(confident.float().mean()),
        "precision_at_0.7": float(right[confident].mean()) if confident.any() else 1.0,
        "ece": expected_calibration_error(confidence, right),
        "escalate_to_active": float(active[escalate].float().mean()) if escalate.any() else 0.0,
        "escalate_to_active_at_0.7": float((active & confident)[escalate].float().mean()) if escalate.any() else 0.0,
        "mean_steps": float(steps.mean()),
    }


def fit_temperature(model: TRM, data: Tensors) -> float:
    """The halting-logit temperature that minimises the log-loss of "fully correct" on `data`."""
    outputs, _ = model.infer(data.features, data.roles, sentence=data.sentence)
    right = fully_correct(outputs, data.functions, data.pointers).float()
    grid = [0.5 + 0.25 * i for i in range(15)]
    losses = [float(F.binary_cross_entropy_with_logits(outputs.halt_logits / t, right)) for t in grid]
    return grid[losses.index(min(losses))]


def expected_calibration_error(confidence: torch.Tensor, correct: torch.Tensor, bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    edges = torch.linspace(0, 1, bins + 1)
    error = torch.zeros(())
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high) if low > 0 else (confidence <= high)
        if inside.any():
            error += inside.float().mean() * (correct[inside].mean() - confidence[inside].mean()).abs()
    return float(error)


def score(metrics: dict[str, float]) -> tuple[float, float, float]:
    """What the evaluation gate compares: exact-match first, then safety, then accuracy."""
    return (
        round(metrics["parameter_exact_match"], 4),
        -round(metrics["escalate_to_active"], 4),
        round(metrics["function_accuracy"], 4),
    )
