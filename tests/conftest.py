"""Shared fixtures. Broker tests run against a real RabbitMQ and fail (never skip) without one."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import aio_pika
import pytest
from pydantic import SecretStr

from agent_sre.settings import Settings
from agent_sre.worker.topology import delay_queue_name, dlq_name, retry_delays


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
