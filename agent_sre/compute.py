"""One OS thread runs every model in the process: the TRM and the embedding model.

Torch's CPU parallelism (OpenMP here) keeps a team of threads per OS thread that calls into it.
Once a second OS thread has run a forward pass, every pass in the process slows down to about
one core's speed, with a long tail: measured on the 2-core machine, the TRM's p50 went from
34 to 50 ms and its p95 from 41 to 80 ms after one pass from a second thread. So loading and
inference go through `run`, which hands them to a single long-lived worker thread; they would
only fight over the same cores if they ran side by side anyway.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-sre-model")


async def run(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """`function(*args, **kwargs)` on the model thread, awaited from the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_executor, functools.partial(function, *args, **kwargs))
