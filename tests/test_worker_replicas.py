"""Replicas of `agent-sre run`, real processes on one queue, sharing their limits in the real Redis."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import pytest
from conftest import OwnRedis
from processes import start_worker_process, wait_for_count

from agent_sre.cli.send import Encoding, encode_event
from agent_sre.settings import DEFAULT_EVENT_TYPE, Settings
from agent_sre.worker.topology import Topology, declare, delay_queue_name, dlq_name, retry_delays

pytestmark = pytest.mark.broker


def crash_loop(pod: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": "KubePodCrashLooping", "pod": pod, "namespace": "shop"},
        "annotations": {"lambda_function": "pod-restart"},
        "startsAt": "2026-11-21T10:00:00Z",
    }


class Fleet:
    def __init__(self, settings: Settings, tmp_path: Path, channel: aio_pika.abc.AbstractChannel, topology: Topology) -> None:
        self.settings, self.tmp_path, self.channel, self.topology = settings, tmp_path, channel, topology
        self.processes: list[subprocess.Popen[bytes]] = []
        self.capture: aio_pika.abc.AbstractQueue | None = None

    def start(self, count: int, **env: str) -> None:
        for _ in range(count):
            name = f"replica-{len(self.processes)}"
            self.processes.append(start_worker_process(self.settings, self.tmp_path, name, **env))

    async def consuming(self, count: int) -> None:
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            queue = await self.channel.declare_queue(self.settings.input_queue, passive=True)
            if (queue.declaration_result.consumer_count or 0) >= count:
                return
            for n, process in enumerate(self.processes):
                assert process.poll() is None, (self.tmp_path / f"replica-{n}.log").read_text()
            assert asyncio.get_running_loop().time() < deadline, "the replicas did not start consuming"
            await asyncio.sleep(0.1)

    async def send(self, data: Any, event_id: str | None = None) -> None:
        message = encode_event(data, event_type=DEFAULT_EVENT_TYPE, encoding=Encoding.knative, event_id=event_id)
        await self.topology.input_exchange.publish(message, routing_key="")

    async def triggers_until_quiet(self, quiet_s: float = 3.0, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """Every trigger, once every queue of the worker's is empty and nothing came for `quiet_s`."""
        assert self.capture is not None
        triggers: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        deadline, last = loop.time() + timeout_s, loop.time()
        queues = [self.settings.input_queue] + [
            delay_queue_name(self.settings.input_queue, d) for d in set(retry_delays(self.settings))
        ]
        while True:
            message = await self.capture.get(no_ack=True, fail=False)
            if message is not None:
                triggers.append(orjson.loads(message.body))
                last = loop.time()
                continue
            counts = [await wait_for_count(self.channel, q, lambda _: True, 1) for q in queues]
            if not any(counts) and loop.time() - last > quiet_s:
                return triggers
            assert loop.time() < deadline, f"still busy: {counts} messages waiting"
            await asyncio.sleep(0.05)

    def audit(self) -> list[list[dict[str, Any]]]:
        files = [self.tmp_path / f"replica-{n}.audit.jsonl" for n in range(len(self.processes))]
        return [[orjson.loads(line) for line in f.read_text().splitlines()] if f.exists() else [] for f in files]

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for n, process in enumerate(self.processes):
            assert process.wait(30) == 0, (self.tmp_path / f"replica-{n}.log").read_text()


@pytest.fixture
async def fleet(broker_settings: Settings, tmp_path: Path) -> AsyncIterator[Fleet]:
    connection = await aio_pika.connect(broker_settings.require_amqp_url())
    async with connection:
        channel = await connection.channel()
        topology = await declare(channel, broker_settings)
        group = Fleet(broker_settings, tmp_path, channel, topology)
        group.capture = await channel.declare_queue(f"{broker_settings.output_exchange}.capture")
        await group.capture.bind(topology.output_exchange, routing_key="")
        try:
            yield group
        finally:
            for process in group.processes:
                if process.poll() is None:
                    process.kill()
                    process.wait(10)


def shared(redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    return {"AGENT_SRE_REDIS_URL": redis_url, "AGENT_SRE_REDIS_PREFIX": prefix, **extra}


async def test_two_replicas_trigger_once_for_one_alert_delivered_twenty_times(fleet, redis_url, redis_prefix) -> None:
    # Given two replicas sharing Redis, both consuming
    fleet.start(2, **shared(redis_url, redis_prefix))
    await fleet.consuming(2)
    # When one alert arrives 20 times, as 20 events (Alertmanager repeats, an HA pair)
    for _ in range(20):
        await fleet.send(crash_loop("api-1"))
    # Then exactly one trigger goes out, and every delivery ends in exactly one final record
    triggers = await fleet.triggers_until_quiet()
    fleet.stop()
    assert [t["parameters"]["name"] for t in triggers] == ["api-1"]
    audits = fleet.audit()
    assert all(audits), "both replicas took deliveries"
    final = [r["action"] for records in audits for r in records if r["action"] != "busy"]
    assert len(final) == 20 and final.count("published") == 1
    assert set(final) <= {"published", "suppressed:cooldown", "duplicate"}


async def test_two_replicas_trigger_once_per_event_id_even_without_a_cooldown(fleet, redis_url, redis_prefix) -> None:
    # Given two replicas sharing Redis, and no cooldown: only the published set stands between
    fleet.start(2, **shared(redis_url, redis_prefix), AGENT_SRE_COOLDOWN_S="0")
    await fleet.consuming(2)
    # When 10 alerts each arrive twice with the same event id (a redelivery crossing replicas)
    for n in range(10):
        for _ in range(2):
            await fleet.send(crash_loop(f"api-{n}"), event_id=f"event-{n}")
    # Then each alert triggers exactly once
    triggers = await fleet.triggers_until_quiet()
    fleet.stop()
    assert sorted(t["parameters"]["name"] for t in triggers) == sorted(f"api-{n}" for n in range(10))


async def test_redis_stopped_mid_stream_loses_nothing_and_acts_on_nothing_without_it(
    fleet, own_redis: OwnRedis, redis_prefix: str
) -> None:
    # Given one replica on a Redis of the test's own, retrying long enough to outlast an outage
    fleet.settings = fleet.settings.model_copy(update={"retry_max_attempts": 8})
    fleet.start(1, **shared(own_redis.url, redis_prefix, AGENT_SRE_REDIS_TIMEOUT_S="0.5"))
    await fleet.consuming(1)
    pods = [f"api-{n}" for n in range(200)]
    for pod in pods[:20]:
        await fleet.send(crash_loop(pod))
    # When Redis stops after the first triggers, the rest arrive, and Redis comes back (empty) 2 s later
    assert fleet.capture is not None
    seen: list[str] = []
    deadline = asyncio.get_running_loop().time() + 30
    while len(seen) < 20:
        message = await fleet.capture.get(no_ack=True, fail=False)
        if message is None:
            assert asyncio.get_running_loop().time() < deadline, f"only {len(seen)} of the first 20 triggers"
            await asyncio.sleep(0.02)
            continue
        seen.append(orjson.loads(message.body)["parameters"]["name"])
    own_redis.stop()
    for pod in pods[20:]:
        await fleet.send(crash_loop(pod))
    await asyncio.sleep(2)
    own_redis.start()
    # Then every alert is triggered once, nothing is dead-lettered, and while Redis was away the
    # alerts took the retry path: none was acted on without its claim
    seen += [t["parameters"]["name"] for t in await fleet.triggers_until_quiet()]
    fleet.stop()
    assert sorted(seen) == sorted(pods)
    assert await wait_for_count(fleet.channel, dlq_name(fleet.settings.input_queue), lambda _: True, 1) == 0
    [records] = fleet.audit()
    retried = [r for r in records if r["action"] == "retry"]
    assert retried and all("Redis" in r["error"] for r in retried)
    for delay in set(retry_delays(fleet.settings)):
        await fleet.channel.queue_delete(delay_queue_name(fleet.settings.input_queue, delay))

