"""Where the models run: one model thread for every selector's pass, and one side thread.

Torch's CPU parallelism (OpenMP here) keeps a team of threads per OS thread that calls into it.
With teams of two threads on the 2-core machine, two OS threads running passes side by side
only fought over the cores (the TRM's p50 went from 34 to 50 ms, its p95 from 41 to 80 ms). So
every model runs on threads whose torch team is one thread (`MODEL_THREADS`): one alert at a
time a second core buys little (a TRM pass on one alert: 1.2 against 1.1 ms), and switching the
team's size between passes costs more (the embedder wants one thread for a query; resizing back
for the TRM took its p50 from 17 to 28 ms and its p95 to 130 ms in the chain).

- `run`: the model thread. Loading and every selector's inference go through it, one at a time.
- `run_aside`: the side thread, for work a later selector will need (`prepare`, see
  selectors/base.py), done on the second core while the model thread answers the current
  selector: the alert's embedding is ready when the TRM defers to rag and fewshot.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

MODEL_THREADS = 1


def _one_team() -> None:
    import torch  # imported here: a worker without model selectors never loads it

    torch.set_num_threads(MODEL_THREADS)


_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-sre-model", initializer=_one_team)
# The other core: work a later selector will need, done while the model thread answers the
# current one (`prepare` in selectors/base.py), also on one torch thread.
_side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-sre-prepare", initializer=_one_team)


async def run(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """`function(*args, **kwargs)` on the model thread, awaited from the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_executor, functools.partial(function, *args, **kwargs))


async def run_aside(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """`function(*args, **kwargs)` on the side thread, beside whatever the model thread runs."""
    return await asyncio.get_running_loop().run_in_executor(_side, functools.partial(function, *args, **kwargs))
