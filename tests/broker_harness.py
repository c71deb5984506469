"""What the broker tests share: an alert, a worker harness and the readers of its queues."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from agent_sre.cli.send import Encoding, encode_event
from agent_sre.schemas.audit import AuditRecord
from agent_sre.settings import DEFAULT_EVENT_TYPE
from agent_sre.worker.app import Worker
from agent_sre.worker.topology import dlq_name


def crash_loop(pod: str = "api-7f9", namespace: str = "shop", **labels: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": "KubePodCrashLooping", "pod": pod, "namespace": namespace, **labels},
        "annotations": {"lambda_function": "pod-restart"},
        "startsAt": "2026-11-21T10:00:00Z",
    }


class Harness:
    """One worker, a channel to publish inputs, and readers for the capture queue and the DLQ."""

    def __init__(self, worker: Worker, channel: AbstractChannel, audit_path: Path) -> None:
        self.worker = worker
        self.settings = worker.settings
        self.channel = channel
        self.audit_path = audit_path
        self.capture: AbstractQueue | None = None

    async def bind_capture(self) -> None:
        exchange = await self.channel.get_exchange(self.settings.output_exchange)
        self.capture = await self.channel.declare_queue(f"{self.settings.output_exchange}.capture", auto_delete=False)
        await self.capture.bind(exchange, routing_key="")

    async def send(self, data: Any = None, *, encoding: Encoding = Encoding.knative, body: bytes | None = None,
                   event_id: str | None = None, event_type: str = DEFAULT_EVENT_TYPE) -> aio_pika.Message:
        message = encode_event(data, event_type=event_type, encoding=encoding, event_id=event_id)
        if body is not None:
            message.body = body
        exchange = await self.channel.get_exchange(self.settings.input_exchange)
        await exchange.publish(message, routing_key="")
        return message

    async def triggers(self, count: int, timeout_s: float = 10.0) -> list[AbstractIncomingMessage]:
        assert self.capture is not None
        return await drain(self.capture, count, timeout_s)

    async def dead_letters(self, count: int, timeout_s: float = 10.0) -> list[AbstractIncomingMessage]:
        queue = await self.channel.get_queue(dlq_name(self.settings.input_queue))
        return await drain(queue, count, timeout_s)

    async def settled(self, messages: int, timeout_s: float = 10.0) -> None:
        """Wait until the worker has settled (acked or requeued) this many messages."""
        await wait_for(lambda: sum_samples(self.worker, "agent_sre_events_total") >= messages, timeout_s)

    def audit(self) -> list[dict[str, Any]]:
        """The worker's audit records; each must be what the readers take (`AuditRecord`)."""
        lines = self.audit_path.read_text().splitlines()
        for line in lines:
            AuditRecord.model_validate_json(line)
        return [orjson.loads(line) for line in lines]

    def sample(self, name: str, **labels: str) -> float:
        return self.worker.metrics.registry.get_sample_value(name, labels) or 0.0


async def drain(queue: AbstractQueue, count: int, timeout_s: float) -> list[AbstractIncomingMessage]:
    """Exactly `count` messages (acked), or fail; then check that no extra one is waiting."""
    received: list[AbstractIncomingMessage] = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(received) < count:
        message = await queue.get(no_ack=True, fail=False)
        if message is None:
            assert asyncio.get_running_loop().time() < deadline, f"got {len(received)} of {count} messages"
            await asyncio.sleep(0.02)
            continue
        received.append(message)
    await asyncio.sleep(0.2)
    extra = await queue.get(no_ack=True, fail=False)
    assert extra is None, f"more than {count} messages: {extra.headers if extra else None}"
    return received


async def wait_for(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def sum_samples(worker: Worker, name: str) -> float:
    return sum(s.value for metric in worker.metrics.registry.collect() for s in metric.samples if s.name == name)
