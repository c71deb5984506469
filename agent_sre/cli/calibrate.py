"""`agent-sre calibrate`: fit the rag and fewshot confidence maps on the generator's val split and
write them to `agent_sre/retrieval/fitted.json`, where the selectors read them. The fitting
(`fit_confidence.py`) loads the selectors' models, so it is imported only when the command runs."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer


def calibrate(
    per_pattern: Annotated[int, typer.Option(help="Val alerts per runbook alert name.")] = 4,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Fit the rag and fewshot confidence maps on the generator's val split; write fitted.json."""
    from .fit_confidence import fit_and_write

    asyncio.run(fit_and_write(per_pattern, seed))
