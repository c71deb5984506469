"""The TRM's shared network `net` as a TorchScript trace, for inference: the same kernels, without
Python between them.

One supervision step calls `net` H_cycles × (L_cycles + 1) times (8 for the shipped 2 × 3), each
call two blocks of about fifteen small ops on a (1, 48, 128) input. One alert at a time, the
kernels themselves are the smaller part of a pass: eager PyTorch spends the rest in module calls
and Python between them. A trace replays the recorded ops from the TorchScript interpreter, on the
same weights (int8 or fp32, shared with the eager modules, not copied) and the same kernels, so its
outputs are bitwise those of the eager `net` (tests/test_trm_traced.py). Thread CPU time on the
2-core machine, one alert, shipped model, int8: a `net` call 0.28 instead of 0.52 ms, `TRM.infer`
3.2-3.7 instead of 5.3-5.7 ms. The batch size stays free: the trace reads it from its input.

Why `net` and not a whole recursion (L_cycles net calls and the sums between them): traced as one,
the 8 calls of a step took 2.22 instead of 2.31 ms, for 12.5 instead of 6.9 MiB of resident
memory (a graph four times the size, and what the interpreter derives from it).

Tracing takes a few tens of milliseconds at load and about 7 MiB; the interpreter profiles the
first calls, so the trace is run twice at load and the first alert does not pay for it. With
gradients on (training) the eager `net` runs. Where tracing is not available (a torch without
TorchScript) the model runs eagerly, as before.
"""

from __future__ import annotations

import logging
import warnings

import torch
import torch.nn as nn

from .model import TRM

log = logging.getLogger(__name__)
WARM_UP_CALLS = 2


class TracedNet(nn.Module):
    """Runs `trace` without gradients, `eager` with them; indexing reaches the eager blocks
    (`net[0].qkv`)."""

    def __init__(self, eager: nn.Sequential, trace: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.eager, self.trace = eager, trace

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.eager(h) if torch.is_grad_enabled() else self.trace(h)

    def __getitem__(self, index: int) -> nn.Module:
        return self.eager[index]

    def __len__(self) -> int:
        return len(self.eager)


def traced(model: TRM) -> TRM:
    """`model` with its `net` replaced by a trace of it (in place; for inference), or `model`
    unchanged where tracing fails."""
    if isinstance(model.net, TracedNet):
        return model
    config = model.config
    example = torch.zeros(1, config.seq_len, config.hidden)
    try:
        with warnings.catch_warnings():
            # torch.jit.trace is marked deprecated, and unpacking q, k, v from one tensor warns
            # that a different size would not be followed: it is always 3
            warnings.simplefilter("ignore")
            with torch.inference_mode():
                trace = torch.jit.trace(model.net.eval(), example, check_trace=False)
                for _ in range(WARM_UP_CALLS):
                    trace(example)
    except (AttributeError, RuntimeError) as exc:
        log.warning("TRM runs eagerly: its network cannot be traced here (%s)", exc)
        return model
    model.net = TracedNet(model.net, trace)
    return model
