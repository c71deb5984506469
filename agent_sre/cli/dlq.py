"""`agent-sre dlq list|show|replay|purge`: look after the dead-letter queue `<input queue>.dlq`."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, TypeVar

import orjson
import typer
from aio_pika.abc import AbstractChannel

from ..errors import AgentSreError
from ..settings import Settings
from ..worker import dlq
from .common import fail, load_settings

app = typer.Typer(
    help="Inspect, replay and purge dead letters (the queue <AGENT_SRE_INPUT_QUEUE>.dlq).",
    no_args_is_help=True,
)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_ERROR_WIDTH = 60
T = TypeVar("T")


def parse_duration(text: str) -> timedelta:
    """`30s`, `10m`, `2h`, `1d`, or a sum such as `1h30m`."""
    compact = text.strip().lower().replace(" ", "")
    if not compact or _DURATION.sub("", compact):
        raise typer.BadParameter(f"{text!r} is not a duration; use e.g. 30s, 10m, 2h, 1d or 1h30m")
    return timedelta(seconds=sum(float(n) * _UNITS[unit] for n, unit in _DURATION.findall(compact)))


Reason = Annotated[str | None, typer.Option(help="Only dead letters with this reason, e.g. no_decision.")]
Alertname = Annotated[str | None, typer.Option(help="Only dead letters about this alert (shell patterns allowed).")]
OlderThan = Annotated[
    timedelta | None, typer.Option(parser=parse_duration, metavar="DURATION", help="Last failure longer ago than this (30s, 10m, 2h, 1d).")
]
NewerThan = Annotated[
    timedelta | None, typer.Option(parser=parse_duration, metavar="DURATION", help="Last failure more recent than this.")
]
Limit = Annotated[int | None, typer.Option(min=1, help="Touch at most this many (the first in queue order).")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")]


@app.command("list")
def list_letters(
    reason: Reason = None,
    alertname: Alertname = None,
    older_than: OlderThan = None,
    newer_than: NewerThan = None,
    limit: Limit = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array instead of a table.")] = False,
) -> None:
    """List dead letters: index, age, reason, alert names, attempts, replays, last error."""
    selection = dlq.Selection(reason, alertname, older_than, newer_than, limit)
    letters = _run(lambda channel, settings: dlq.browse(channel, settings, selection))
    now = datetime.now(timezone.utc)
    if as_json:
        typer.echo(orjson.dumps([letter.summary(now) for letter in letters], option=orjson.OPT_INDENT_2).decode())
    else:
        _print_table(letters, now)


@app.command("show")
def show(key: Annotated[str, typer.Argument(metavar="INDEX|EVENT_ID", help="An index from `dlq list`, or an event id.")]) -> None:
    """Print one dead letter whole: its summary, headers, properties and body."""
    letter = _run(lambda channel, settings: dlq.find(channel, settings, key))
    if letter is None:
        fail(f"no dead letter {key!r} (give an index from `agent-sre dlq list` or an event id)", code=1)
    typer.echo(_pretty(letter.summary(datetime.now(timezone.utc))))
    typer.echo(f"headers:\n{_pretty(letter.headers)}")
    typer.echo(f"properties:\n{_pretty(letter.properties)}")
    try:
        body = _pretty(orjson.loads(letter.body))
    except orjson.JSONDecodeError:
        body = letter.body.decode("utf-8", errors="replace")
    typer.echo(f"body ({letter.body_size} bytes):\n{body}")


@app.command("replay")
def replay(
    reason: Reason = None,
    alertname: Alertname = None,
    older_than: OlderThan = None,
    newer_than: NewerThan = None,
    limit: Limit = None,
    dry_run: DryRun = False,
) -> None:
    """Republish matching dead letters to the input exchange, attempts reset, replay count + 1."""
    from tqdm import tqdm

    selection = dlq.Selection(reason, alertname, older_than, newer_than, limit)
    # Progress only for a person watching; logs and pipes get the summary alone.
    with tqdm(total=limit, unit="msg", desc="replaying", file=sys.stderr, disable=dry_run or not sys.stderr.isatty()) as bar:
        letters = _run(
            lambda channel, settings: dlq.replay(channel, settings, selection, dry_run=dry_run, progress=lambda _: bar.update())
        )
    _report(letters, "replay", "replayed", dry_run)


@app.command("purge")
def purge(
    reason: Reason = None,
    alertname: Alertname = None,
    older_than: OlderThan = None,
    newer_than: NewerThan = None,
    limit: Limit = None,
    dry_run: DryRun = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Purge without a filter without asking.")] = False,
) -> None:
    """Delete matching dead letters for good."""
    selection = dlq.Selection(reason, alertname, older_than, newer_than, limit)
    if not (selection.narrows or dry_run or yes):
        what = "every dead letter" if limit is None else f"the first {limit} dead letters, whatever they are"
        if not sys.stdin.isatty():
            fail(f"purge without --reason, --alertname, --older-than or --newer-than deletes {what}; add --yes to confirm")
        typer.confirm(f"Delete {what}?", abort=True)
    letters = _run(lambda channel, settings: dlq.purge(channel, settings, selection, dry_run=dry_run))
    _report(letters, "purge", "purged", dry_run)


def _run(operation: Callable[[AbstractChannel, Settings], Awaitable[T]]) -> T:
    settings = load_settings()
    # aiormq logs a failed connect on its own; the command reports it once, password masked.
    logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)

    async def call() -> T:
        async with dlq.open_channel(settings) as channel:
            return await operation(channel, settings)

    try:
        return asyncio.run(call())
    except AgentSreError as exc:
        fail(str(exc))


def _report(letters: list[dlq.DeadLetter], verb: str, done: str, dry_run: bool) -> None:
    now = datetime.now(timezone.utc)
    if dry_run:
        typer.echo(f"dry run: would {verb} {len(letters)} dead letter(s); nothing changed")
        if letters:
            _print_table(letters, now)
    else:
        typer.echo(f"{done} {len(letters)} dead letter(s)")


def _print_table(letters: list[dlq.DeadLetter], now: datetime) -> None:
    if not letters:
        typer.echo("no dead letters match")
        return
    rows = [("#", "AGE", "REASON", "ALERTNAMES", "ATTEMPTS", "REPLAYS", "LAST ERROR")]
    for letter in letters:
        error = " ".join(letter.last_error.split())
        if len(error) > _ERROR_WIDTH:
            error = error[: _ERROR_WIDTH - 1] + "…"
        rows.append((
            str(letter.index), _age_text(letter.age(now)), letter.reason, ",".join(letter.alertnames) or "-",
            str(letter.attempts), str(letter.replays), error,
        ))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])


def _age_text(age: timedelta | None) -> str:
    if age is None:
        return "-"
    seconds = max(age.total_seconds(), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _pretty(value: Any) -> str:
    return orjson.dumps(value, default=_jsonable, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
