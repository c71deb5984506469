"""`agent-sre watch` against the real RabbitMQ: a bound queue makes triggers routable, and prints them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import orjson
import pytest
from typer.testing import CliRunner

from agent_sre.cli import app
from tests.processes import AGENT_SRE, child_env
from agent_sre.cli.watch import default_queue, format_trigger, watch_triggers
from agent_sre.errors import TransientError
from agent_sre.schemas.alert import Alert
from agent_sre.schemas.decision import Decision
from agent_sre.settings import Settings
from agent_sre.worker.connection import connect, publish_confirmed
from agent_sre.worker.publisher import Kind, build_trigger

pytestmark = pytest.mark.broker


def _trigger(pod: str, method: str = "rules", confidence: float = 0.9) -> tuple[Alert, Decision, aio_pika.Message]:
    alert = Alert(
        labels={"alertname": "KubePodCrashLooping", "pod": pod, "namespace": "shop"}, startsAt="2026-11-21T10:00:00Z"
    )
    decision = Decision(
        lambda_function="pod-restart", parameters={"name": pod, "namespace": "shop"}, confidence=confidence, method=method
    )
    return alert, decision, build_trigger(alert, decision)


async def _publish(settings: Settings, *messages: aio_pika.Message) -> None:
    """Publish as the worker does: confirmed and mandatory, so an unroutable trigger raises."""
    connection = await connect(settings, "test", robust=False)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(settings.output_exchange)
        for message in messages:
            await publish_confirmed(exchange, message, "", True, 5.0)


def _env(settings: Settings) -> dict[str, str]:
    return {
        "AGENT_SRE_AMQP_URL": settings.require_amqp_url(),
        "AGENT_SRE_INPUT_EXCHANGE": settings.input_exchange,
        "AGENT_SRE_INPUT_QUEUE": settings.input_queue,
        "AGENT_SRE_OUTPUT_EXCHANGE": settings.output_exchange,
        "AGENT_SRE_RETRY_MAX_ATTEMPTS": str(settings.retry_max_attempts),
        "AGENT_SRE_RETRY_BASE_DELAY_S": str(settings.retry_base_delay_s),
        "AGENT_SRE_RETRY_MAX_DELAY_S": str(settings.retry_max_delay_s),
    }


@pytest.fixture
async def settings(broker_settings: Settings) -> AsyncIterator[Settings]:
    """The broker settings; the durable watch queue they name is deleted afterwards."""
    yield broker_settings
    connection = await aio_pika.connect(broker_settings.require_amqp_url())
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(default_queue(broker_settings))


async def _watching(settings: Settings, count: int) -> tuple[list[str], asyncio.Task[bool]]:
    """A watch for `count` triggers, once its queue is bound; the lines it prints."""
    lines: list[str] = []
    bound = asyncio.Event()
    watching = asyncio.create_task(
        watch_triggers(settings, lines.append, count=count, timeout_s=10, on_bound=lambda name: bound.set())
    )
    await asyncio.wait_for(bound.wait(), 10)
    return lines, watching


async def test_watch_prints_one_line_per_trigger_with_its_function_and_correlation_id(settings: Settings) -> None:
    lines, watching = await _watching(settings, 2)
    first, second = _trigger("api-1", "rules", 0.9), _trigger("api-2", "known", 0.95)
    await _publish(settings, first[2], second[2])  # routable: watch's queue is bound

    assert await asyncio.wait_for(watching, 10) is True
    assert len(lines) == 2
    for line, (alert, decision, _) in zip(lines, (first, second)):
        assert line.startswith('pod-restart {"name":"' + decision.parameters["name"] + '","namespace":"shop"} ')
        assert "alertname=KubePodCrashLooping" in line
        assert f"confidence={decision.confidence}" in line and f"triggered_by={decision.method}" in line
        assert line.endswith(f"correlation_id={alert.correlation_id}")


async def test_on_a_shared_exchange_only_agent_sres_own_events_are_shown(settings: Settings) -> None:
    """A Knative broker's exchange carries every event, the alerts too: watch skips them."""
    lines, watching = await _watching(settings, 1)
    alert_event = aio_pika.Message(b'{"labels": {"alertname": "KubePodCrashLooping"}}',
                                   headers={"type": "io.homelab.prometheus.alert.fired", "id": "a-1"})
    _, _, trigger = _trigger("api-9")
    await _publish(settings, alert_event, trigger)
    assert await asyncio.wait_for(watching, 10) is True
    [line] = lines
    assert line.startswith('pod-restart {"name":"api-9"')


async def test_timeout_exits_1_and_the_durable_queue_keeps_triggers_for_the_next_watch(settings: Settings) -> None:
    def invoke(*args: str) -> Any:
        # The command runs its own event loop, so it gets a thread of its own.
        return CliRunner().invoke(app, ["watch", *args], env=_env(settings))

    idle = await asyncio.to_thread(invoke, "--timeout", "0.5")
    assert idle.exit_code == 1, idle.output
    assert "no trigger arrived for 0.5s" in idle.stderr

    # watch has exited, but its durable queue is still bound: the trigger is routable, not returned.
    alert, _, message = _trigger("api-3")
    await _publish(settings, message)

    caught = await asyncio.to_thread(invoke, "--count", "1", "--json", "--timeout", "10")
    assert caught.exit_code == 0, caught.output
    assert orjson.loads(caught.stdout) == orjson.loads(message.body)
    assert orjson.loads(caught.stdout)["correlation_id"] == alert.correlation_id


async def test_a_temporary_queue_goes_away_with_watch(settings: Settings) -> None:
    lines: list[str] = []
    bound = asyncio.Event()
    watching = asyncio.create_task(
        watch_triggers(settings, lines.append, temporary=True, count=1, timeout_s=10, on_bound=lambda name: bound.set())
    )
    await asyncio.wait_for(bound.wait(), 10)
    await _publish(settings, _trigger("api-4")[2])
    assert await asyncio.wait_for(watching, 10) is True
    assert lines[0].startswith("pod-restart ")

    # Nothing is bound any more: the next trigger is returned, as in a fresh set-up.
    with pytest.raises(TransientError, match="unroutable"):
        await _publish(settings, _trigger("api-5")[2])


async def test_ctrl_c_stops_watch_cleanly(settings: Settings) -> None:
    command = [*AGENT_SRE, "watch", "--temporary"]
    process = subprocess.Popen(command, env=child_env({**os.environ, **_env(settings)}), stderr=subprocess.PIPE, text=True)
    try:
        first = await asyncio.wait_for(asyncio.to_thread(process.stderr.readline), 30)  # type: ignore[union-attr]
        assert first.startswith("watching "), first
        process.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(process.wait, 10)
        rest = process.stderr.read()  # type: ignore[union-attr]
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 0, rest
    assert "Traceback" not in rest


def test_a_body_that_is_not_a_trigger_is_shown_not_fatal() -> None:
    assert format_trigger(b"{oops") == "(not a trigger: 5 bytes that are not a JSON object)"
    assert format_trigger(b'{"lambda_function": "escalate"}') == (
        "escalate {} alertname=- confidence=- triggered_by=- correlation_id=-"
    )


def test_a_proposal_or_an_approval_request_is_shown_as_one_so_nobody_takes_it_for_an_action() -> None:
    alert, decision, trigger = _trigger("api-1")
    proposal = build_trigger(alert, decision, Kind.PROPOSED)
    assert format_trigger(proposal.body, proposal.headers["type"]).startswith("proposed: pod-restart ")
    assert not format_trigger(trigger.body, trigger.headers["type"]).startswith("proposed")
    assert proposal.message_id != trigger.message_id, "a proposal never shares the trigger's id"
    request = build_trigger(alert, decision, Kind.APPROVAL_REQUESTED)
    assert format_trigger(request.body, request.headers["type"]).startswith("approval requested: pod-restart ")
    assert request.message_id not in (trigger.message_id, proposal.message_id)
