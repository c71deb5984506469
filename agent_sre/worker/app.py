"""The worker process: broker connection, topology, selector chain, consumer and HTTP ingress.

Two channels: one consumes (with the prefetch), one publishes (with confirms, returned
messages raised). A failed publish closing its channel then never costs the deliveries in hand.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping
from typing import Any

from aio_pika.abc import AbstractRobustConnection

from ..errors import ConfigError, TransientError
from ..schemas.catalog import load_catalog
from ..selectors.base import Selector, SelectorContext, close_selectors, create_selectors, start_selectors
from ..selectors.chain import Chain
from ..settings import Settings
from .approvals import NEEDS_REDIS, Approval, NotWaiting, RedisApprovals, waiting
from .audit import AuditLog
from .connection import connect
from .consumer import Consumer
from .limits import Limits
from .metrics import Metrics
from .pipeline import Pipeline
from .publisher import Publisher, approval_answer
from .result_auth import SignedResults
from .silences import Silences
from .stores import build_approvals, build_limits, build_outcomes
from .topology import declare

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, settings: Settings, metrics: Metrics | None = None, audit: AuditLog | None = None) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else Metrics()
        self.audit = audit if audit is not None else AuditLog(settings.audit_log)
        self.connection: AbstractRobustConnection | None = None
        self.publisher: Publisher | None = None
        self.consumer: Consumer | None = None
        self.http_port: int | None = None
        self.limits: Limits | None = None
        self.approvals: RedisApprovals | None = None
        self.silences: Silences | None = None
        self._selectors: list[Selector] = []
        self._selectors_started = False
        self._queue: Any = None
        self._consume_channel: Any = None
        self._consumer_tag: str | None = None
        self._http_runner: Any = None
        self._stop = asyncio.Event()

    @property
    def ready(self) -> bool:
        """Broker connected and selectors started: what /readyz reports."""
        return (
            self._selectors_started
            and self._consumer_tag is not None
            and self.connection is not None
            and not self.connection.is_closed
            and self.connection.connected.is_set()
        )

    async def start(self) -> None:
        settings = self.settings
        catalog = load_catalog(settings.catalog_path)
        with_approvals = catalog.needs_approvals(settings.mode, settings.approval_risk)
        if with_approvals and settings.redis_url is None:  # before anything loads or connects
            raise ConfigError(NEEDS_REDIS)
        self._selectors = create_selectors(settings.selectors, SelectorContext(settings, catalog))
        await self._start_http()  # first, so liveness answers while the broker and models load
        self.connection = await connect(settings, "worker", robust=True)
        publish_channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        topology = await declare(publish_channel, settings, approvals=with_approvals)
        self.publisher = Publisher(topology, settings)
        await start_selectors(self._selectors)
        self._selectors_started = True
        chain = Chain(self._selectors, catalog, settings, observer=self.metrics)
        self.limits = await build_limits(settings)
        outcomes = build_outcomes(settings, self.limits)
        self.approvals = build_approvals(settings, self.limits) if with_approvals else None
        if settings.alertmanager_url:
            self.silences = Silences(settings.alertmanager_url, settings.alertmanager_timeout_s, self.metrics)
        pipeline = Pipeline(settings, chain, self.limits, self.publisher, self.metrics, self.audit, outcomes,
                            self.approvals, self.silences)
        if settings.result_key is not None:  # only signed results count (result_auth.py)
            pipeline = SignedResults(pipeline, settings.result_key.get_secret_value().encode())  # type: ignore[assignment]
        self.consumer = Consumer(pipeline, self.publisher, self.metrics, settings)
        self._consume_channel = await self.connection.channel(publisher_confirms=False)
        await self._consume_channel.set_qos(prefetch_count=settings.prefetch)
        self._queue = await self._consume_channel.get_queue(settings.input_queue, ensure=True)
        self._consumer_tag = await self._queue.consume(self.consumer)
        log.info("consuming %s (prefetch %d, concurrency %d)", settings.input_queue, settings.prefetch, settings.concurrency)

    async def stop(self, grace_s: float = 30.0) -> None:
        """Stop taking messages, let those in hand finish (up to `grace_s`), then close everything.

        Messages still unacked when the connection closes go back to the queue: none is lost.
        """
        if self._queue is not None and self._consumer_tag is not None:
            try:
                await self._queue.cancel(self._consumer_tag)
            except Exception:  # isolation point: a dead channel has no consumer left to cancel
                log.warning("cancelling the consumer failed; closing anyway")
            self._consumer_tag = None
        if self.consumer is not None and not await self.consumer.wait_idle(grace_s):
            log.warning("messages still in hand after %.0fs; the broker will redeliver them", grace_s)
        await self._flush_acks()
        if self._http_runner is not None:
            await self._http_runner.cleanup()
            self._http_runner = None
        if self.connection is not None:
            await self.connection.close()
        await close_selectors(self._selectors)
        if self.limits is not None:
            await self.limits.close()
        if self.silences is not None:
            await self.silences.close()
        self.audit.close()

    async def run(self) -> bool:
        """Start, then serve until SIGTERM or SIGINT (or `request_stop`), then stop cleanly.

        A stop asked for during start-up (connecting, loading models) is honoured at once: the
        start is cancelled. Returns whether it was, since a model load already running on the
        model thread cannot be interrupted: the caller may exit without waiting for it.
        """
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        starting = asyncio.ensure_future(self.start())
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                log.info("stop requested during start-up; not starting")
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
                return True
            starting.result()  # a failed start raises here
            await stopping
            log.info("stopping")
            return False
        finally:
            stopping.cancel()
            await self.stop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    def request_stop(self) -> None:
        self._stop.set()

    # The HTTP ingress's view of the broker (agent_sre.worker.http.Ingress).
    async def publish_input(self, body: bytes, headers: Mapping[str, Any], content_type: str | None, message_id: str) -> None:
        await self._require_publisher().publish_input(body, headers, content_type or "application/json", message_id)

    async def dead_letter_raw(self, body: bytes, headers: Mapping[str, Any], reason: str, error: str) -> None:
        await self._require_publisher().dead_letter_raw(body, headers, reason, error)

    async def answer_approval(self, correlation_id: str, approved: bool, by: str) -> Approval:
        """`POST /approvals/{id}`: the request must wait for an answer; the answer then goes to the
        input exchange, as `agent-sre approvals` and any other client send it."""
        if self.approvals is None:
            raise NotWaiting("approvals are off: set AGENT_SRE_APPROVAL_RISK or a catalog `mode: approve`")
        approval = await waiting(self.approvals, correlation_id)
        key = self.settings.result_key.get_secret_value().encode() if self.settings.result_key else None
        body, headers = approval_answer(correlation_id, approved, by, key)
        await self._require_publisher().publish_input(body, headers, "application/json", headers["id"])
        return approval

    async def pending_approvals(self) -> list[Approval]:
        return await self.approvals.pending() if self.approvals is not None else []

    def _require_publisher(self) -> Publisher:
        if self.publisher is None:
            raise TransientError("not connected to the broker yet")
        return self.publisher

    async def _flush_acks(self) -> None:
        """The consumer queues its acks without waiting for them to be written; closing the
        connection would drop those still queued, and their messages would come back. The broker
        answers a channel's requests in order, so once it answers this one it has every ack."""
        if self._consume_channel is None or self._consume_channel.is_closed:
            return  # the broker requeued what that channel had not acked
        try:
            await asyncio.wait_for(self._consume_channel.set_qos(prefetch_count=self.settings.prefetch), 5.0)
        except Exception as exc:  # isolation point: what is not acked is redelivered, never lost
            log.warning("could not confirm that the last acks reached the broker: %r", exc)

    async def _start_http(self) -> None:
        # HTTP ingress: agent_sre/worker/http.py (its own engineer); wired here and nowhere else.
        from . import http

        app = http.create_app(self, self.metrics, self.settings, lambda: self.ready)
        self._http_runner = await http.start_http(app, self.settings.http_host, self.settings.http_port)
        self.http_port = http.bound_port(self._http_runner)
        log.info("HTTP ingress on %s:%d", self.settings.http_host, self.http_port)
