"""Shared fixtures. Broker tests run against a real RabbitMQ and fail (never skip) without one."""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import signal
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from pydantic import SecretStr

from agent_sre.settings import Settings
from agent_sre.worker.app import Worker
from agent_sre.worker.audit import AuditLog
from agent_sre.worker.topology import delay_queue_name, dlq_name, retry_delays
from tests.broker_harness import Harness
from tests.kube_api import FakeKube


def _docker_engine_running() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """AMQP_URL when set; else a testcontainers RabbitMQ when Docker runs; else the test fails."""
    url = os.environ.get("AMQP_URL")
    if url:
        yield url
        return
    if _docker_engine_running():
        from testcontainers.rabbitmq import RabbitMqContainer  # optional extra: .[containers]

        with RabbitMqContainer("rabbitmq:3.13-management") as container:
            params = container.get_connection_params()
            yield f"amqp://guest:guest@{params.host}:{params.port}/"
        return
    pytest.fail(
        "no RabbitMQ for broker tests: set AMQP_URL=amqp://guest:guest@127.0.0.1:5672/ "
        "(bash .ci/run does), or run a Docker engine with `pip install -e .[containers]`"
    )


@pytest.fixture
def broker_settings(amqp_url: str) -> Iterator[Settings]:
    """Settings with names of their own, so tests never share queues; everything is deleted after."""
    prefix = f"test.{uuid.uuid4().hex[:10]}"
    settings = Settings(
        amqp_url=SecretStr(amqp_url),
        input_exchange=f"{prefix}.alerts",
        input_queue=f"{prefix}.alerts",
        output_exchange=f"{prefix}.triggers",
        retry_base_delay_s=0.2,
        retry_max_delay_s=1.0,
        retry_max_attempts=3,
        http_port=0,
        selectors=["static", "rules"],  # the worker's tests; the model selectors have their own
    )
    yield settings
    _delete_topology(amqp_url, settings)


def _delete_topology(url: str, settings: Settings) -> None:
    import asyncio

    async def delete() -> None:
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            queues = [settings.input_queue, dlq_name(settings.input_queue)]
            queues += [delay_queue_name(settings.input_queue, d) for d in set(retry_delays(settings))]
            queues += [f"{settings.output_exchange}.capture"]
            for queue in queues:
                await channel.queue_delete(queue)
            for exchange in (settings.input_exchange, settings.output_exchange):
                await channel.exchange_delete(exchange)

    asyncio.run(delete())


@pytest.fixture
async def amqp_connection(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(amqp_url)
    yield connection
    await connection.close()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """REDIS_URL, else the machine's Redis on 127.0.0.1:6379 (.ci/run starts it when it is down)."""
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of the test's own; its keys are deleted after."""
    import redis.asyncio as aioredis

    prefix = f"test-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = aioredis.Redis.from_url(redis_url)
    keys = [key async for key in client.scan_iter(match=f"{{{prefix}}}:*", count=10_000)]  # few round trips
    for start in range(0, len(keys), 1000):
        await client.delete(*keys[start:start + 1000])
    await client.aclose()


class OwnRedis:
    """A redis-server of the test's own on a free port, to stop and start: the shared one never is."""

    def __init__(self, directory: str) -> None:
        self.port = _free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import time

        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.directory],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _port_open(self.port):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)

    def pause(self) -> None:
        """SIGSTOP: the port stays open and the socket accepts writes, but nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def own_redis(tmp_path) -> Iterator[OwnRedis]:
    server = OwnRedis(str(tmp_path))
    server.start()
    yield server
    server.stop()


@contextlib.contextmanager
def threaded_http(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[int]:
    """A real HTTP server on a free port, in a thread of its own, answering with `handler`: for
    peers whose protocol is HTTP (a stub worker, an OTLP collector). Yields its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
async def start_worker(
    broker_settings: Settings, amqp_connection: aio_pika.abc.AbstractRobustConnection, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    workers: list[Worker] = []

    async def start(capture: bool = True, **overrides: Any) -> Harness:
        audit_path = tmp_path / f"audit-{len(workers)}.jsonl"
        worker = Worker(broker_settings.model_copy(update=overrides), audit=AuditLog(audit_path))
        workers.append(worker)
        await worker.start()
        assert worker.ready
        harness = Harness(worker, await amqp_connection.channel(), audit_path)
        if capture:
            await harness.bind_capture()
        return harness

    yield start
    for worker in workers:
        await worker.stop(grace_s=5)


@pytest.fixture
async def fake_kube() -> AsyncIterator[FakeKube]:
    """The functions' Kubernetes API (tests/kube_api.py), allowing everything, started for one test."""
    server = FakeKube()
    await server.start()
    yield server
    await server.close()
