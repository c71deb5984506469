"""Queue and exchange names, and declaring them.

    input exchange --(unfiltered binding)--> <input queue>        (quorum, manual acks)
    <input queue>.delay.<ms>ms   one quorum queue per retry delay (and one for the approval TTL,
                                 where approvals are on); on TTL expiry a message is dead-lettered
                                 through the default exchange back to the input queue
    <input queue>.dlq            dead letters (ours, and the broker's after the delivery limit)
    output exchange              triggers, a durable headers exchange like the Knative broker's

Expired messages leave a quorum queue only from its head, so each delay gets its own queue.
"""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from ..settings import Settings


def dlq_name(input_queue: str) -> str:
    return f"{input_queue}.dlq"


def delay_queue_name(input_queue: str, delay_s: float) -> str:
    return f"{input_queue}.delay.{int(delay_s * 1000)}ms"


def retry_delays(settings: Settings) -> list[float]:
    """The wait before attempt 2, 3, ...: exponential, capped. One entry per possible retry."""
    return [
        min(settings.retry_base_delay_s * 2**attempt, settings.retry_max_delay_s)
        for attempt in range(settings.retry_max_attempts - 1)
    ]


# At-least-once dead-lettering on quorum queues needs reject-publish overflow (RabbitMQ >= 3.10).
_AT_LEAST_ONCE = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}


@dataclass(frozen=True)
class Topology:
    input_exchange: AbstractExchange
    input_queue: AbstractQueue
    dead_letter_queue: AbstractQueue
    output_exchange: AbstractExchange
    default_exchange: AbstractExchange


async def declare(channel: AbstractChannel, settings: Settings, approvals: bool = False) -> Topology:
    """Declare everything the worker uses; idempotent. A mismatch with an existing queue raises.
    With `approvals`, also the delay queue that holds each request's timer for its TTL."""
    name = settings.input_queue
    dead_letters = await channel.declare_queue(dlq_name(name), durable=True, arguments={"x-queue-type": "quorum"})
    input_queue = await channel.declare_queue(
        name,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": settings.delivery_limit,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dlq_name(name),
            **_AT_LEAST_ONCE,
        },
    )
    delays = set(retry_delays(settings)) | ({settings.approval_ttl_s} if approvals else set())
    for delay in sorted(delays):
        await channel.declare_queue(
            delay_queue_name(name, delay),
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-message-ttl": int(delay * 1000),
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": name,
                **_AT_LEAST_ONCE,
            },
        )
    input_exchange = await channel.declare_exchange(
        settings.input_exchange, aio_pika.ExchangeType(settings.input_exchange_type), durable=True
    )
    await input_queue.bind(input_exchange, routing_key="#" if settings.input_exchange_type == "topic" else "")
    output_exchange = await channel.declare_exchange(
        settings.output_exchange, aio_pika.ExchangeType(settings.output_exchange_type), durable=True
    )
    return Topology(
        input_exchange=input_exchange,
        input_queue=input_queue,
        dead_letter_queue=dead_letters,
        output_exchange=output_exchange,
        default_exchange=channel.default_exchange,
    )
