"""Helpers shared by the sub-commands: settings, errors that say what to fix."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from pydantic import ValidationError

from ..errors import AgentSreError
from ..settings import Settings


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def load_settings(**overrides: object) -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "AGENT_SRE_" + "_".join(str(part) for part in first["loc"]).upper()
        fail(f"{name}: {first['msg']}")
    except AgentSreError as exc:
        fail(str(exc))
    updates = {key: value for key, value in overrides.items() if value is not None}
    return settings.model_copy(update=updates) if updates else settings


def read_text_argument(value: str | None) -> str:
    """The JSON argument itself, or standard input for `-` or no argument."""
    if value is None or value == "-":
        if sys.stdin.isatty():
            fail("give an alert as JSON, `-` to read standard input, or --file")
        return sys.stdin.read()
    return value
