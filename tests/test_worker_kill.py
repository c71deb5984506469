"""Ack only after confirm: SIGKILL `agent-sre run` mid-batch, start it again, and nothing is lost."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import aio_pika
import orjson
import pytest

from agent_sre.cli.send import Encoding, encode_event
from agent_sre.settings import DEFAULT_EVENT_TYPE, Settings
from agent_sre.worker.topology import declare, dlq_name

pytestmark = pytest.mark.broker

N = 500


def _worker_env(settings: Settings, audit: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_SRE_")}
    env.update(
        AGENT_SRE_AMQP_URL=settings.require_amqp_url(),
        AGENT_SRE_INPUT_EXCHANGE=settings.input_exchange,
        AGENT_SRE_INPUT_QUEUE=settings.input_queue,
        AGENT_SRE_OUTPUT_EXCHANGE=settings.output_exchange,
        AGENT_SRE_RETRY_BASE_DELAY_S=str(settings.retry_base_delay_s),
        AGENT_SRE_RETRY_MAX_DELAY_S=str(settings.retry_max_delay_s),
        AGENT_SRE_RETRY_MAX_ATTEMPTS=str(settings.retry_max_attempts),
        AGENT_SRE_PREFETCH="4",
        AGENT_SRE_CONCURRENCY="4",
        AGENT_SRE_RATE_LIMIT_BURST="100000",
        AGENT_SRE_HTTP_PORT="0",
        AGENT_SRE_HTTP_HOST="127.0.0.1",
        AGENT_SRE_AUDIT_LOG=str(audit),
        AGENT_SRE_LOG_LEVEL="WARNING",
        AGENT_SRE_SELECTORS="static,rules",
    )
    return env


def _start(settings: Settings, tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["agent-sre", "run"],
        env=_worker_env(settings, tmp_path / f"{name}.audit.jsonl"),
        cwd=tmp_path,  # no stray .env file is read
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / f"{name}.log", "wb"),
    )


async def test_sigkill_mid_batch_loses_no_alert(broker_settings: Settings, tmp_path: Path) -> None:
    settings = broker_settings
    connection = await aio_pika.connect(settings.require_amqp_url())
    async with connection:
        channel = await connection.channel()
        topology = await declare(channel, settings)
        capture = await channel.declare_queue(f"{settings.output_exchange}.capture")
        await capture.bind(topology.output_exchange, routing_key="")
        # Given N distinct alerts waiting in the input queue
        for n in range(N):
            alert = {
                "labels": {"alertname": "KubePodCrashLooping", "pod": f"api-{n}", "namespace": "shop"},
                "annotations": {"lambda_function": "pod-restart"},
                "startsAt": "2026-11-21T10:00:00Z",
            }
            message = encode_event(alert, event_type=DEFAULT_EVENT_TYPE, encoding=Encoding.knative)
            await topology.input_exchange.publish(message, routing_key="")

        # When the worker is killed after some, but not all, triggers went out
        first = _start(settings, tmp_path, "first")
        try:
            published = await _wait_for_count(channel, capture.name, lambda count: count >= 25, timeout_s=30)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        assert published < N, "the worker finished before it was killed; raise N"

        # Then a second worker finishes the batch, and every alert has its trigger
        second = _start(settings, tmp_path, "second")
        try:
            correlation_ids: set[str] = set()
            deliveries = 0
            deadline = asyncio.get_running_loop().time() + 60
            while len(correlation_ids) < N:
                assert asyncio.get_running_loop().time() < deadline, f"{len(correlation_ids)} of {N} alerts triggered"
                message = await capture.get(no_ack=True, fail=False)
                if message is None:
                    assert second.poll() is None, (tmp_path / "second.log").read_text()
                    await asyncio.sleep(0.05)
                    continue
                deliveries += 1
                correlation_ids.add(orjson.loads(message.body)["correlation_id"])
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0, "a SIGTERM stops the worker cleanly"
        # Stopped cleanly, so every message was settled: the input queue and the DLQ end empty.
        for queue in (settings.input_queue, dlq_name(settings.input_queue)):
            await _wait_for_count(channel, queue, lambda count: count == 0, timeout_s=1)
        # Only the messages in hand at the kill (at most the prefetch) can be triggered twice.
        assert N <= deliveries <= N + 4


async def _wait_for_count(
    channel: aio_pika.abc.AbstractChannel, queue: str, done: Callable[[int], bool], timeout_s: float
) -> int:
    """Poll a queue's ready-message count until `done(count)`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        declared = await channel.declare_queue(queue, passive=True)
        count = declared.declaration_result.message_count or 0
        if done(count):
            return count
        assert asyncio.get_running_loop().time() < deadline, f"{queue} stuck at {count} messages"
        await asyncio.sleep(0.01)
