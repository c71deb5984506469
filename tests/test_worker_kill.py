"""Ack only after confirm: SIGKILL `agent-sre run` mid-batch, start it again, and nothing is lost."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aio_pika
import aiohttp
import orjson
import pytest

from agent_sre.cli.send import Encoding, encode_event
from agent_sre.settings import DEFAULT_EVENT_TYPE, Settings
from agent_sre.worker.topology import declare, delay_queue_name, dlq_name, retry_delays

from processes import start_worker_process as _start
from processes import wait_for_count as _wait_for_count

pytestmark = pytest.mark.broker

N = 500


@pytest.mark.parametrize("state", ["memory", "redis"])
async def test_sigkill_mid_batch_loses_no_alert(
    broker_settings: Settings, tmp_path: Path, state: str, redis_url: str, redis_prefix: str
) -> None:
    settings = broker_settings
    # With Redis, the killed worker's claims outlive it, for AGENT_SRE_CLAIM_TTL_S: the second one
    # must wait them out, never take them for a published alert.
    shared = {"AGENT_SRE_REDIS_URL": redis_url, "AGENT_SRE_REDIS_PREFIX": redis_prefix, "AGENT_SRE_CLAIM_TTL_S": "2"}
    extra = shared if state == "redis" else {}
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
        first = _start(settings, tmp_path, "first", **extra)
        try:
            published = await _wait_for_count(channel, capture.name, lambda count: count >= 25, timeout_s=30)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        assert published < N, "the worker finished before it was killed; raise N"

        # Then a second worker finishes the batch, and every alert has its trigger
        second = _start(settings, tmp_path, "second", **extra)
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
            # With Redis, a copy the second worker found claimed by the killed one waits in a delay
            # queue (`busy`) even when its alert has its trigger already: let every copy come back.
            parked = [delay_queue_name(settings.input_queue, d) for d in set(retry_delays(settings))]
            while sum([await _ready(channel, queue) for queue in [settings.input_queue, *parked]]):
                assert asyncio.get_running_loop().time() < deadline, "parked copies never came back"
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)  # the last ones taken are settled
            while (message := await capture.get(no_ack=True, fail=False)) is not None:
                deliveries += 1
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0, "a SIGTERM stops the worker cleanly"
        # Stopped cleanly, so every message was settled: the input queue and the DLQ end empty.
        for queue in (settings.input_queue, dlq_name(settings.input_queue)):
            await _wait_for_count(channel, queue, lambda count: count == 0, timeout_s=1)
        # Only the messages in hand at the kill (at most the prefetch) can be triggered twice.
        assert N <= deliveries <= N + 4


async def _ready(channel: aio_pika.abc.AbstractChannel, queue: str) -> int:
    declared = await channel.declare_queue(queue, passive=True)
    return declared.declaration_result.message_count or 0


async def test_sigterm_while_models_load_stops_the_worker_at_once(broker_settings: Settings, tmp_path: Path) -> None:
    # Given a worker loading the default chain's models with a cold cache (a minute or more here)
    from conftest import _free_port

    port = _free_port()
    worker = _start(broker_settings, tmp_path, "loading", AGENT_SRE_SELECTORS="static,known,trm,rag,fewshot,rules",
                    AGENT_SRE_RETRIEVAL_CACHE_DIR=str(tmp_path / "cold-cache"), AGENT_SRE_HTTP_PORT=str(port))
    try:
        async with aiohttp.ClientSession() as http:
            deadline = asyncio.get_running_loop().time() + 60
            while True:  # the HTTP side answers first, while the models load
                try:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                        assert response.status == 503, "already ready: the load was too quick to test"
                        break
                except aiohttp.ClientConnectionError:
                    assert worker.poll() is None, (tmp_path / "loading.log").read_text()
                    assert asyncio.get_running_loop().time() < deadline
                    await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        # When SIGTERM arrives mid-load
        started = asyncio.get_running_loop().time()
        worker.send_signal(signal.SIGTERM)
        # Then it exits cleanly within seconds, not after the load
        code = await asyncio.get_running_loop().run_in_executor(None, worker.wait, 15)
        assert code == 0, (tmp_path / "loading.log").read_text()
        assert asyncio.get_running_loop().time() - started < 10
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
