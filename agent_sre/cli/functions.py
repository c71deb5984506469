"""`agent-sre functions`: run the remediation functions (agent_sre/functions) that act on triggers.

The functions' modules (the Kubernetes client and its models, the manifest renderer) are imported
inside each command: every `agent-sre` command loads this module, and `agent-sre run` would carry
them for nothing (43 MiB resident).
"""

from __future__ import annotations

import asyncio
import functools
import signal
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Annotated, Any

import aio_pika
import typer
from aiohttp import web
from aiormq.exceptions import AMQPConnectionError

from ..errors import AgentSreError, TransientError
from ..logs import setup_logging
from ..settings import Settings
from .common import fail, load_settings

if TYPE_CHECKING:
    from ..functions.delivery import Publish

app = typer.Typer(
    help="The remediation functions: act on agent-sre's triggers (least privilege, at most once, dry run first) "
    "and report each one's io.homelab.agent-sre.lambda.result.",
    no_args_is_help=True,
)

_FUNCTIONS_HELP = "Comma list of the functions to run (AGENT_SRE_FUNCTIONS; default: every catalog function)."
_DRY_RUN_HELP = "Send every write with dryRun=All: nothing changes (AGENT_SRE_FUNCTIONS_DRY_RUN)."


def _settings(functions: str | None, dry_run: bool | None) -> Settings:
    overrides: dict[str, object] = {"functions_dry_run": dry_run}
    if functions:
        overrides["functions"] = [name.strip() for name in functions.split(",") if name.strip()]
    settings = load_settings(**overrides)
    try:
        setup_logging(settings.log_level)
    except AgentSreError as exc:
        fail(str(exc))
    return settings


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def _run(main: Coroutine[Any, Any, None]) -> None:
    try:
        asyncio.run(main)
    except TransientError as exc:
        fail(str(exc), 1)
    except AgentSreError as exc:
        fail(str(exc))
    except (AMQPConnectionError, ConnectionError) as exc:
        fail(f"cannot reach the broker: {exc}; check AGENT_SRE_AMQP_URL and that RabbitMQ runs", 1)


@app.command()
def consume(
    functions: Annotated[str | None, typer.Option(help=_FUNCTIONS_HELP)] = None,
    dry_run: Annotated[bool | None, typer.Option("--dry-run/--no-dry-run", help=_DRY_RUN_HELP)] = None,
) -> None:
    """Consume triggers from AGENT_SRE_OUTPUT_EXCHANGE (queue AGENT_SRE_FUNCTIONS_QUEUE) and publish each
    result to AGENT_SRE_INPUT_EXCHANGE, until SIGTERM or SIGINT; GET /healthz and /metrics on AGENT_SRE_HTTP_PORT.
    For docker-compose and plain Deployments."""
    settings = _settings(functions, dry_run)
    try:
        settings.require_amqp_url()
    except AgentSreError as exc:
        fail(str(exc))

    from ..functions.amqp import consume as consume_triggers
    from ..functions.http import create_app
    from ..functions.service import service

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        async with service(settings) as running:
            monitoring = web.AppRunner(create_app(running, triggers=False))  # /healthz and /metrics
            await monitoring.setup()
            await web.TCPSite(monitoring, settings.http_host, settings.http_port).start()
            try:
                await consume_triggers(running, stop)
            finally:
                await monitoring.cleanup()

    _run(main())


@app.command()
def serve(
    functions: Annotated[str | None, typer.Option(help=_FUNCTIONS_HELP)] = None,
    dry_run: Annotated[bool | None, typer.Option("--dry-run/--no-dry-run", help=_DRY_RUN_HELP)] = None,
    host: Annotated[str | None, typer.Option(help="Listen address (AGENT_SRE_HTTP_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (AGENT_SRE_HTTP_PORT).")] = None,
    publish: Annotated[bool, typer.Option(
        help="Publish results to AGENT_SRE_INPUT_EXCHANGE and answer 202, instead of replying with them "
        "(Knative's reply path).")] = False,
) -> None:
    """Take triggers as CloudEvents over HTTP (POST /), as a Knative Trigger delivers them, and reply with
    each result as a CloudEvent. GET /healthz and /metrics too."""
    settings = _settings(functions, dry_run)
    from ..functions.http import create_app
    from ..functions.service import service

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        async with service(settings) as running:
            connection = await aio_pika.connect_robust(settings.require_amqp_url()) if publish else None
            try:
                sender = await _publisher(connection, settings) if connection is not None else None
                runner = web.AppRunner(create_app(running, sender))
                await runner.setup()
                await web.TCPSite(runner, host or settings.http_host, port or settings.http_port).start()
                await stop.wait()
                await runner.cleanup()
            finally:
                if connection is not None:
                    await connection.close()

    _run(main())


async def _publisher(connection: aio_pika.abc.AbstractRobustConnection, settings: Settings) -> Publish:
    from ..functions.amqp import publish_result, result_exchange

    channel = await connection.channel(publisher_confirms=True)
    return functools.partial(publish_result, await result_exchange(channel, settings))


@app.command()
def manifests(
    namespace: Annotated[str, typer.Option(help="The namespace the ServiceAccounts live in.")] = "agent-sre",
    knative: Annotated[bool, typer.Option(help="Knative Services running `functions serve` instead of Deployments.")] = False,
    component: Annotated[str | None, typer.Option(
        help="Instead, the kustomize Component that grants an opt-in's rules and turns it on (kubelet-stats).")] = None,
) -> None:
    """Print each function's ServiceAccount, exactly the RBAC rights it uses, and its Deployment (YAML):
    deploy/kubernetes/overlays/functions(-knative)/functions.yaml is this output; with --component,
    deploy/kubernetes/components/<name>/kustomization.yaml."""
    from ..functions.manifests import render, render_component

    if component is not None:
        try:
            typer.echo(render_component(component), nl=False)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--component") from exc
        return
    typer.echo(render(namespace, knative), nl=False)
