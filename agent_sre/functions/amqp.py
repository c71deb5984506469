"""`agent-sre functions consume`: triggers from the worker's output exchange, results to its input.

One quorum queue (AGENT_SRE_FUNCTIONS_QUEUE) bound to the output exchange for the trigger type
and, on a headers exchange, each function this process runs (the `subject` header), as a Knative
Trigger's filter would. Per delivery: read → run → publish the result (confirmed) → ack. An
unreadable delivery is logged, counted and dropped (acked): retrying cannot mend it. A result
that cannot be published is kept and the trigger requeued: its redelivery publishes the kept
result and acts not (delivery.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractQueue

from ..errors import InputError, TransientError
from ..settings import Settings
from .delivery import deliver
from .service import Service
from .trigger import TRIGGER_TYPE, read_trigger

log = logging.getLogger(__name__)
_CONFIRM_TIMEOUT_S = 30.0


async def result_exchange(channel: AbstractChannel, settings: Settings) -> AbstractExchange:
    """The worker's input exchange, declared as the worker declares it: results go there."""
    return await channel.declare_exchange(settings.input_exchange, aio_pika.ExchangeType(settings.input_exchange_type),
                                          durable=True)


async def trigger_queue(channel: AbstractChannel, settings: Settings, functions: list[str]) -> AbstractQueue:
    """The functions' queue, bound to the worker's output exchange for these functions' triggers."""
    output = await channel.declare_exchange(settings.output_exchange, aio_pika.ExchangeType(settings.output_exchange_type),
                                            durable=True)
    queue = await channel.declare_queue(settings.functions_queue, durable=True, arguments={
        "x-queue-type": "quorum", "x-delivery-limit": settings.delivery_limit})
    if settings.output_exchange_type == "headers":
        for function in functions:
            await queue.bind(output, arguments={"x-match": "all", "type": TRIGGER_TYPE, "subject": function})
    else:
        await queue.bind(output, routing_key="#" if settings.output_exchange_type == "topic" else "")
    return queue


async def publish_result(exchange: AbstractExchange, body: bytes, headers: dict[str, str]) -> None:
    """Published and confirmed by the broker, or TransientError."""
    message = aio_pika.Message(body=body, headers=dict(headers), content_type="application/json",
                               message_id=headers["id"], delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
    try:
        await exchange.publish(message, routing_key="", mandatory=True, timeout=_CONFIRM_TIMEOUT_S)
    except (aio_pika.exceptions.AMQPError, aio_pika.exceptions.ChannelInvalidStateError, TimeoutError,
            ConnectionError) as exc:
        raise TransientError(f"the result {headers['id']} was not confirmed: {exc!r}") from exc


class TriggerConsumer:
    def __init__(self, service: Service, results: AbstractExchange) -> None:
        self.service = service
        self.results = results

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        try:
            await self._handle(message)
            await message.ack()
        except TransientError as exc:
            log.warning("trigger %s requeued: %s", message.message_id, exc)
            await message.nack(requeue=True)
        except Exception:  # the isolation point of one delivery: requeued, up to the queue's delivery limit
            log.exception("trigger %s failed outside any function: requeued", message.message_id)
            await message.nack(requeue=True)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        runner = self.service.runner
        try:
            trigger = read_trigger(message.body, message.headers, content_type=message.content_type,
                                   message_id=message.message_id, max_bytes=self.service.settings.max_event_bytes)
        except InputError as exc:
            runner.metrics.invalid.labels(exc.reason).inc()
            log.warning("delivery %s is no trigger (%s): dropped: %s", message.message_id, exc.reason, exc)
            return
        if trigger.function not in runner.functions:
            log.info("trigger %s is for %s, not run here: left alone", trigger.id, trigger.function)
            return
        result = await runner.run(trigger)
        await deliver(runner, trigger, result, self.service.key, functools.partial(publish_result, self.results))


async def consume(service: Service, stop: asyncio.Event) -> None:
    """Until `stop` is set: connect, declare, consume; then cancel the consumer and close."""
    settings = service.settings
    connection = await aio_pika.connect_robust(settings.require_amqp_url())
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=settings.concurrency)
        results = await result_exchange(channel, settings)
        queue = await trigger_queue(channel, settings, sorted(service.runner.functions))
        tag = await queue.consume(TriggerConsumer(service, results))
        log.info("consuming triggers for %s from %s", ", ".join(sorted(service.runner.functions)), settings.functions_queue)
        await stop.wait()
        await queue.cancel(tag)
    finally:
        await connection.close()
