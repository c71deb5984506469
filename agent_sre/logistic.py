"""Platt-style calibration: a logistic map from features to the probability of being right.

Shared by the retrieval selectors' confidence maps (`agent-sre calibrate`) and the TRM's novelty
map (`agent-sre trm calibrate`). Features are standardised before the fit, so the stored weights
stay readable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Logistic:
    features: tuple[str, ...]
    weights: tuple[float, ...]  # per standardised feature
    bias: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]

    def __call__(self, values: dict[str, float]) -> float:
        logit = self.bias
        for name, weight, mean, scale in zip(self.features, self.weights, self.mean, self.scale):
            logit += weight * (values[name] - mean) / scale
        # Clamped logits: a probability of exactly 0 or 1 would claim more than a val split can show.
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, logit))))

    def to_dict(self) -> dict[str, object]:
        return {
            "features": list(self.features),
            "weights": [round(w, 6) for w in self.weights],
            "bias": round(self.bias, 6),
            "mean": [round(m, 6) for m in self.mean],
            "scale": [round(s, 6) for s in self.scale],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Logistic:
        return cls(
            tuple(data["features"]),
            tuple(data["weights"]),
            float(data["bias"]),
            tuple(data["mean"]),
            tuple(data["scale"]),
        )


def fit_logistic(features: list[str], rows: list[dict[str, float]], correct: list[bool], l2: float = 1.0) -> Logistic:
    """Maximum likelihood with a small L2 penalty (so a separable val split still gives finite weights)."""
    x = np.array([[row[name] for name in features] for row in rows], dtype=np.float64)  # (N, F)
    y = np.array(correct, dtype=np.float64)  # (N,)
    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-9] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])  # (N, F+1), the last column is the bias
    w = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(100):  # Newton's method; converges in a handful of steps
        p = 1 / (1 + np.exp(-np.clip(z @ w, -30, 30)))
        gradient = z.T @ (p - y) + penalty * w
        hessian = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return Logistic(tuple(features), tuple(w[:-1].tolist()), float(w[-1]), tuple(mean.tolist()), tuple(scale.tolist()))

