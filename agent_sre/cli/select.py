"""`agent-sre select`: one-shot selection, no broker."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from ..errors import AgentSreError, InputError
from ..schemas.alert import Alert, parse_alerts
from ..schemas.catalog import load_catalog
from ..schemas.cloudevent import STRUCTURED_CONTENT_TYPE, decode_event
from ..selectors.base import SelectorContext, close_selectors, create_selectors, start_selectors
from ..selectors.chain import Chain
from .common import fail, load_settings, read_text_argument


def select(
    alert_json: Annotated[
        str | None, typer.Argument(metavar="[JSON | -]", help="An alert object, a structured CloudEvent or an Alertmanager webhook.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="JSON Lines input: one output line per input line, in order.")
    ] = None,
    selectors: Annotated[
        str | None, typer.Option(help="Comma list overriding AGENT_SRE_SELECTORS, e.g. static,rules.")
    ] = None,
) -> None:
    """Print one decision JSON per alert: lambda_function (null if undecided), parameters,
    confidence, method, reasoning and phases."""
    overrides: dict[str, Any] = {}
    if selectors:
        overrides["selectors"] = [name.strip() for name in selectors.split(",") if name.strip()]
    settings = load_settings(**overrides)
    try:
        catalog = load_catalog(settings.catalog_path)
        chain_selectors = create_selectors(settings.selectors, SelectorContext(settings, catalog))
    except AgentSreError as exc:
        fail(str(exc))
    chain = Chain(chain_selectors, catalog, settings)
    work = _select_lines(chain, file) if file is not None else _select_one(chain, read_text_argument(alert_json))
    asyncio.run(_with_selectors(chain, work))


async def _with_selectors(chain: Chain, work: Coroutine[Any, Any, None]) -> None:
    """Load the selectors' models, do the work, and close them (background tasks, sessions) after."""
    try:
        await start_selectors(chain.selectors)
        await work
    finally:
        work.close()  # a no-op once awaited; stops a coroutine that never started from warning
        await close_selectors(chain.selectors)


async def _select_one(chain: Chain, text: str) -> None:
    try:
        alerts = alerts_from_json(text)
    except InputError as exc:
        fail(f"{exc.reason}: {exc}")
    for alert in alerts:
        typer.echo(await _decide_json(chain, alert))


async def _select_lines(chain: Chain, path: Path) -> None:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    failed = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            typer.echo("")  # keeps output line N answering input line N
            continue
        try:
            alerts = alerts_from_json(line)
        except InputError as exc:
            failed += 1
            typer.echo(f"error: {path}:{number}: {exc.reason}: {exc}", err=True)
            typer.echo(orjson.dumps({"error": exc.reason, "line": number, "message": str(exc)}).decode())
            continue
        try:
            decisions = [orjson.loads(await _decide_json(chain, alert)) for alert in alerts]
        except Exception as exc:  # isolation point: one line that breaks the chain must not end the run
            failed += 1
            message = f"{type(exc).__name__}: {exc}"
            typer.echo(f"error: {path}:{number}: decision_error: {message}", err=True)
            typer.echo(orjson.dumps({"error": "decision_error", "line": number, "message": message}).decode())
            continue
        typer.echo(orjson.dumps(decisions[0] if len(decisions) == 1 else decisions).decode())
    if failed:
        raise typer.Exit(1)


def alerts_from_json(text: str) -> list[Alert]:
    """An alert, an Alertmanager webhook, or a structured CloudEvent carrying either."""
    try:
        payload = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InputError("invalid_json", f"input is not JSON: {exc}") from exc
    if isinstance(payload, dict) and "specversion" in payload:
        # The wire decoder checks the envelope and reads `data` or `data_base64`.
        body = text.encode()
        payload = decode_event(body, None, content_type=STRUCTURED_CONTENT_TYPE, max_bytes=len(body)).data
    elif isinstance(payload, dict) and set(payload) == {"data"}:
        payload = payload["data"]  # the seeds' curl body: attributes were in the headers
    return parse_alerts(payload)


async def _decide_json(chain: Chain, alert: Alert) -> str:
    decision = await chain.decide(alert)
    return orjson.dumps(decision.model_dump(mode="json")).decode()
