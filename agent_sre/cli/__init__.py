"""The `agent-sre` command. Each sub-command lives in its own module."""

from __future__ import annotations

import typer

from . import approvals, dlq, functions
from . import calibrate as calibrate_command
from . import run as run_command
from . import select as select_command
from . import send as send_command
from . import trm as trm_command
from . import watch as watch_command

app = typer.Typer(
    help="agent-sre: picks one remediation lambda function per firing alert and triggers it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("select")(select_command.select)
app.command("run")(run_command.run)
app.command("send")(send_command.send)
app.command("watch")(watch_command.watch)
app.command("calibrate")(calibrate_command.calibrate)
app.add_typer(approvals.app, name="approvals")
app.add_typer(dlq.app, name="dlq")
app.add_typer(functions.app, name="functions")
app.add_typer(trm_command.app, name="trm")


@app.callback()
def _root() -> None:
    """agent-sre: picks one remediation lambda function per firing alert and triggers it."""


def main() -> None:
    app()
