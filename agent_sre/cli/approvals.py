"""`agent-sre approvals list|approve|deny`: the requests that wait for a human, and the answers.

The requests are read from Redis (AGENT_SRE_REDIS_URL, as the worker holds them); an answer goes
to the input exchange as an `approval.granted` / `.denied` CloudEvent, which a worker then acts on.
"""

from __future__ import annotations

import asyncio
import getpass
import time
from typing import Annotated

import orjson
import typer

from ..errors import AgentSreError, TransientError
from ..settings import Settings
from ..worker.stores import build_approvals, build_limits
from ..worker.approvals import Approval, NotWaiting, RedisApprovals, waiting
from ..worker.publisher import approval_answer
from .common import fail, load_settings
from .send import event_message, publish_event

app = typer.Typer(help="Approval requests: list those waiting, approve or deny one.", no_args_is_help=True)

_ID = Annotated[str, typer.Argument(help="The request's correlation id, as `list` shows it.")]
_BY = Annotated[str | None, typer.Option("--by", help="Who answers, for the audit trail (default: your login name).")]


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="One JSON object per request.")] = False) -> None:
    """The requests waiting for an answer, soonest to expire first."""
    pending = _run(load_settings(), _pending)
    if as_json:
        for approval in pending:
            typer.echo(orjson.dumps(approval.summary()).decode())
        return
    if not pending:
        typer.echo("no approval request waits for an answer")
        return
    now = time.time()
    for approval in pending:
        parameters = " ".join(f"{k}={v}" for k, v in approval.decision.get("parameters", {}).items())
        left = max(0, int(approval.expires_at - now))
        typer.echo(f"{approval.correlation_id}  {approval.function} {parameters}  ({approval.alertname}; "
                   f"expires in {left // 60}m{left % 60:02d}s)")


@app.command()
def approve(correlation_id: _ID, by: _BY = None) -> None:
    """Approve a request: a worker publishes its trigger."""
    _answer(correlation_id, True, by)


@app.command()
def deny(correlation_id: _ID, by: _BY = None) -> None:
    """Deny a request: a worker escalates its alert to a human instead."""
    _answer(correlation_id, False, by)


def _answer(correlation_id: str, approved: bool, by: str | None) -> None:
    settings = load_settings()
    who = (by or getpass.getuser()).strip()
    if not who:
        fail("--by: give the name of who answers")

    async def answer(approvals: RedisApprovals) -> Approval:
        approval = await waiting(approvals, correlation_id)
        key = settings.result_key.get_secret_value().encode() if settings.result_key else None
        body, headers = approval_answer(correlation_id, approved, who, key)
        await publish_event(settings, event_message(body, headers, "application/json", headers["id"]))
        return approval

    approval = _run(settings, answer)
    typer.echo(orjson.dumps({"correlation_id": correlation_id, "function": approval.function,
                             "answer": "approved" if approved else "denied", "by": who}).decode())


def _run(settings: Settings, action):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        limits = await build_limits(settings)
        try:
            return await action(build_approvals(settings, limits))
        finally:
            await limits.close()

    try:
        return asyncio.run(main())
    except NotWaiting as exc:
        fail(str(exc), 1)
    except TransientError as exc:  # Redis or the broker down: try again later
        fail(str(exc), 1)
    except AgentSreError as exc:
        fail(str(exc))


async def _pending(approvals: RedisApprovals) -> list[Approval]:
    return await approvals.pending()
