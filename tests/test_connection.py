"""agent_sre.worker.connection against the real RabbitMQ: clear connect errors, confirmed publishes."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection
from pydantic import SecretStr
from yarl import URL

from agent_sre.errors import ConfigError, TransientError
from agent_sre.settings import Settings
from agent_sre.worker.connection import connect, publish_confirmed

pytestmark = pytest.mark.broker


def _with_password(amqp_url: str, password: str, port: int | None = None) -> Settings:
    url = URL(amqp_url)
    url = url.with_port(port) if port is not None else url
    # `%2F` in the URL is `/` in the password: neither spelling may reach a message.
    return Settings(amqp_url=SecretStr(str(url).replace(f":{url.raw_password}@", f":{password}@", 1)))


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("robust", [False, True])
async def test_a_wrong_password_is_a_config_error_that_never_shows_it(amqp_url: str, robust: bool) -> None:
    secret = f"wrong{uuid.uuid4().hex[:8]}%2Fpw"
    with pytest.raises(ConfigError) as raised:
        # A robust connection must fail fast on the first attempt, not retry a bad login forever.
        await asyncio.wait_for(connect(_with_password(amqp_url, secret), "test", robust=robust), 20)
    message = str(raised.value)
    assert "refused the login" in message and ":***@" in message
    assert secret not in message and secret.replace("%2F", "/") not in message


async def test_a_closed_port_is_a_transient_error_that_never_shows_the_password(amqp_url: str) -> None:
    secret = f"secret{uuid.uuid4().hex[:8]}"
    port = _closed_port()
    with pytest.raises(TransientError) as raised:
        await connect(_with_password(amqp_url, secret, port), "test", robust=False)
    message = str(raised.value)
    assert message.startswith("cannot reach the broker at ") and f":{port}/" in message
    assert secret not in message


async def test_connect_names_the_connection_and_robust_gives_a_robust_one(amqp_url: str) -> None:
    connection = await connect(Settings(amqp_url=SecretStr(amqp_url)), "probe", robust=True)
    async with connection:
        assert isinstance(connection, AbstractRobustConnection)
        name = connection.kwargs["client_properties"]["connection_name"]
        assert name.startswith("agent-sre probe ") and name.endswith(f" {os.getpid()}")


async def test_publish_confirmed_returns_once_acked_and_raises_when_unroutable(amqp_url: str) -> None:
    connection = await connect(Settings(amqp_url=SecretStr(amqp_url)), "test", robust=False)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.declare_exchange(f"test.{uuid.uuid4().hex[:10]}", aio_pika.ExchangeType.HEADERS)
        try:
            with pytest.raises(TransientError, match="unroutable"):
                await publish_confirmed(exchange, aio_pika.Message(b"nobody"), "", True, 5.0)
            queue = await channel.declare_queue(exclusive=True)
            await queue.bind(exchange)
            await publish_confirmed(exchange, aio_pika.Message(b"routed"), "", True, 5.0)
            delivered = await queue.get(timeout=5, no_ack=True)
            assert delivered.body == b"routed"
        finally:
            await channel.exchange_delete(exchange.name)


async def test_a_returned_message_on_a_channel_that_does_not_raise_is_not_confirmed(amqp_url: str) -> None:
    connection = await connect(Settings(amqp_url=SecretStr(amqp_url)), "test", robust=False)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=False)
        exchange = await channel.declare_exchange(f"test.{uuid.uuid4().hex[:10]}", aio_pika.ExchangeType.HEADERS)
        try:
            with pytest.raises(TransientError, match="was not confirmed"):
                await publish_confirmed(exchange, aio_pika.Message(b"nobody"), "", True, 5.0)
        finally:
            await channel.exchange_delete(exchange.name)
