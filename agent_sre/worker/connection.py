"""The one way agent-sre connects to RabbitMQ, publishes with a broker confirm and acks a delivery.

Every failure comes back as an `agent_sre.errors` error whose text never holds the password:
a broker that cannot be reached, or a publish it did not confirm, is a TransientError (worth
trying again); a login or virtual host it refuses is a ConfigError (the URL must change).
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Literal, overload

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractExchange, AbstractIncomingMessage, AbstractRobustConnection
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from aiormq import spec
from aiormq.exceptions import AMQPConnectionError, ProbableAuthenticationError
from yarl import URL

from ..errors import ConfigError, TransientError
from ..logs import MASK, mask_secrets
from ..settings import Settings

# Per attempt: a broker that does not answer the handshake in this long is not there.
CONNECT_TIMEOUT_S = 10.0
# Short: while a robust connection reconnects, deliveries wait in the queue.
RECONNECT_INTERVAL_S = 2.0
# What a publish can fail with when the broker or the connection misbehaves.
_PUBLISH_ERRORS = (AMQPError, ChannelInvalidStateError, ConnectionError, asyncio.TimeoutError)


@overload
async def connect(settings: Settings, name: str, robust: Literal[True]) -> AbstractRobustConnection: ...
@overload
async def connect(settings: Settings, name: str, robust: Literal[False]) -> AbstractConnection: ...
async def connect(settings: Settings, name: str, robust: bool) -> AbstractConnection:
    """Connect to AGENT_SRE_AMQP_URL, named `agent-sre <name> <host> <pid>` in the management UI.

    A robust connection reconnects after it is lost, but only once the first attempt succeeded:
    a broker that is down or refuses the login at start-up is reported, not retried forever.
    """
    url = settings.require_amqp_url()
    client_properties = {"connection_name": f"agent-sre {name} {socket.gethostname()} {os.getpid()}"}
    try:
        if robust:
            return await aio_pika.connect_robust(
                url, timeout=CONNECT_TIMEOUT_S, reconnect_interval=RECONNECT_INTERVAL_S,
                client_properties=client_properties,
            )
        return await aio_pika.connect(url, timeout=CONNECT_TIMEOUT_S, client_properties=client_properties)
    except ProbableAuthenticationError as exc:
        raise ConfigError(
            f"the broker at {mask_secrets(url)} refused the login ({_reason(exc, url)}); "
            "check the user and password in AGENT_SRE_AMQP_URL"
        ) from exc
    except (AMQPConnectionError, OSError, asyncio.TimeoutError) as exc:
        raise TransientError(
            f"cannot reach the broker at {mask_secrets(url)}: {_reason(exc, url)}; "
            "check AGENT_SRE_AMQP_URL and that RabbitMQ runs"
        ) from exc
    except AMQPError as exc:
        # RabbitMQ answers an unknown virtual host, or one the user may not use, by closing the
        # connection during the handshake; aiormq reports that as an unexpected frame.
        raise ConfigError(
            f"the broker at {mask_secrets(url)} closed the connection while opening it ({_reason(exc, url)}); "
            "check that the virtual host in AGENT_SRE_AMQP_URL exists and the user may use it"
        ) from exc


async def publish_confirmed(
    exchange: AbstractExchange, message: aio_pika.Message, routing_key: str, mandatory: bool, timeout_s: float
) -> None:
    """Publish and wait for the broker's ack; anything else raises TransientError.

    `exchange` must be on a channel opened with publisher_confirms=True. With `mandatory`, a
    message no queue is bound for is returned by the broker and counts as not delivered.

    Written straight to the aiormq channel, as aio-pika's `Exchange.publish` does, but without
    waiting for the frame to be flushed to the socket first: the broker's confirm, awaited here,
    comes only after the broker has the message, so that wait (one more wake-up per publish)
    adds no guarantee.
    """
    try:
        if exchange.channel.is_closed:
            raise ChannelInvalidStateError(f"{exchange.channel!r} closed")
        channel = await exchange.channel.get_underlay_channel()
        confirmation = await channel.basic_publish(
            message.body, exchange=exchange.name, routing_key=routing_key, properties=message.properties,
            mandatory=mandatory, timeout=timeout_s, wait=False,
        )
    except _PUBLISH_ERRORS as exc:
        raise TransientError(f"publish to {_where(exchange, routing_key)} failed: {_describe(exc)}") from exc
    except asyncio.CancelledError as exc:
        # aiormq cancels a pending confirm when the connection closes under it: that publish
        # failed and is retried. Only a cancel of this task itself (shutdown) goes on as one.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        raise TransientError(
            f"publish to {_where(exchange, routing_key)} failed: the connection closed before the broker confirmed"
        ) from exc
    # Anything but an ack (a returned message on a channel that does not raise) is not a delivery.
    if not isinstance(confirmation, spec.Basic.Ack):
        raise TransientError(f"publish to {_where(exchange, routing_key)} was not confirmed: {confirmation!r}")


async def ack(message: AbstractIncomingMessage) -> None:
    """Ack a delivery without waiting for the frame to be flushed to the socket, as aio-pika's
    `ack` does. An ack lost with its connection only means a redelivery, which dedup answers;
    before a worker closes its connection on purpose, `Worker.stop` makes sure the broker has
    every ack sent."""
    await message.channel.basic_ack(message.delivery_tag, wait=False)


def _where(exchange: AbstractExchange, routing_key: str) -> str:
    return f"exchange {exchange.name!r}" if exchange.name else f"queue {routing_key!r}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "no confirm in time"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, aio_pika.exceptions.PublishError):
        return f"unroutable (returned by the broker): {text}"
    return f"{type(exc).__name__}: {text}"


def _reason(exc: BaseException, url: str) -> str:
    """The client library's words for a failed connect, without the password in any spelling."""
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT_S:g}s"
    args = exc.args
    # aiormq wraps socket errors as (errno, text) and other errors as (text,).
    if len(args) == 2 and isinstance(args[0], int):
        text = str(args[1])
    elif len(args) == 1:
        text = str(args[0])
    else:
        text = str(exc) or type(exc).__name__
    text = mask_secrets(text)
    try:
        parsed = URL(url)
        spellings = {parsed.password, parsed.raw_password} - {None, ""}
    except ValueError:
        spellings = set()
    for password in spellings:
        text = text.replace(str(password), MASK)
    return text
