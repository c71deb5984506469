"""`agent-sre run`: the consumer and the HTTP ingress, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Annotated, Any

import typer
from aiormq.exceptions import AMQPConnectionError
from yarl import URL

from .. import tracing
from ..errors import AgentSreError, TransientError
from ..logs import mask_url, setup_logging
from ..worker.app import Worker
from .common import fail, load_settings


def run(
    selectors: Annotated[
        str | None, typer.Option(help="Comma list overriding AGENT_SRE_SELECTORS, e.g. static,rules.")
    ] = None,
) -> None:
    """Consume alert events from RabbitMQ and publish one trigger per firing alert; serve HTTP too."""
    overrides: dict[str, Any] = {}
    if selectors:
        overrides["selectors"] = [name.strip() for name in selectors.split(",") if name.strip()]
    settings = load_settings(**overrides)
    try:
        url = settings.require_amqp_url()
        setup_logging(settings.log_level)
        tracing.configure_from_env()  # OTLP export when the OTEL_* variables ask for it
        try:
            cut_short = asyncio.run(Worker(settings).run())
        finally:
            tracing.disable()  # exports the spans still waiting
    except TransientError as exc:  # e.g. the broker is down: worth restarting, nothing to fix in the config
        fail(str(exc), 1)
    except AgentSreError as exc:
        fail(str(exc))
    except (AMQPConnectionError, ConnectionError) as exc:
        fail(f"cannot reach the broker at {_where(url)}: {exc}; check AGENT_SRE_AMQP_URL and that RabbitMQ runs")
    except OSError as exc:
        fail(f"cannot start: {exc}", 1)
    if cut_short:
        # Stopped while loading models: nothing was consumed and the connection is closed, but the
        # model thread may still be loading, and a normal exit would wait for it. SIGTERM wins.
        logging.shutdown()
        os._exit(0)


def _where(url: str) -> str:
    """host:port and the URL with its password masked, never the password itself."""
    try:
        parsed = URL(url)
        return f"{parsed.host}:{parsed.port or 5672} ({mask_url(url)})"
    except ValueError:
        return mask_url(url)
