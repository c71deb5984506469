"""HTTP ingress (CloudEvents and Alertmanager webhooks), approvals, /metrics, /healthz and /readyz.

Every accepted event becomes one AMQP message on the input exchange, in the Knative broker's
binary mode, and is answered 202 only once the broker confirmed it. The statuses follow what the
senders do with them (Knative's data-plane contract and its dispatchers' SelectiveRetry, which
retries 5xx, 404, 408, 409 and 429; Alertmanager's webhook notifier, which retries only 5xx):
- 202 is a delivery. `POST /` answers it with an empty body: Knative's channel-based broker turns
  a 2xx whose body is neither empty nor a CloudEvent into a 502, retried and then dead-lettered.
- 400 is final for both, so a refused body is dead-lettered here first.
- 503 is retried by both: when that dead letter or the publish fails, when a body is too slow,
  and past the connection cap (http_guard.py). No alert is lost either way.

Slow clients are bounded (http_guard.py): at most `http_max_connections` at once, each with
`http_header_timeout_s` to send a request head and `http_body_timeout_s` to send its body.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from typing import Protocol

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..bearer import CHALLENGE, REFUSAL, authorized, token_of
from ..errors import InputError, TransientError
from ..schemas.alert import parse_alerts
from ..schemas.cloudevent import InboundEvent, decode_event, trigger_headers
from ..schemas.events import APPROVAL_ANSWER_TYPES, RESULT_TYPE
from ..settings import Settings
from .approvals import Approval, NotWaiting, parse_approval_answer
from .http_guard import LIMITS, ConnectionLimits, GuardedSite, head_deadline
from .metrics import Metrics
from .outcomes import parse_result

log = logging.getLogger(__name__)

ALERTMANAGER_SOURCE = "/alertmanager"
_TRACING = ("traceparent", "tracestate")


class Ingress(Protocol):
    """What the HTTP side needs from the worker's broker connection."""

    async def publish_input(self, body: bytes, headers: dict[str, str], content_type: str | None, message_id: str) -> None:
        """Publish to the input exchange, persistent, and wait for the confirm; raise on failure."""

    async def dead_letter_raw(self, body: bytes, headers: dict[str, str], reason: str, error: str) -> None:
        """Put a refused request body on the dead-letter queue with its reason; raise on failure."""

    async def answer_approval(self, correlation_id: str, approved: bool, by: str) -> Approval:
        """Put a person's answer on the input exchange; NotWaiting when no request waits for one."""

    async def pending_approvals(self) -> list[Approval]:
        """The approval requests waiting for an answer."""


def create_app(ingress: Ingress, metrics: Metrics, settings: Settings, is_ready: Callable[[], bool]) -> web.Application:
    # client_max_size guards any handler that reads the whole body; ours read at most one byte more.
    app = web.Application(client_max_size=settings.max_event_bytes, middlewares=[head_deadline])
    app[LIMITS] = ConnectionLimits(
        max_connections=settings.http_max_connections,
        header_timeout_s=settings.http_header_timeout_s,
        on_refused=lambda: metrics.event("other", "http_refused"),
        on_timeout=lambda: metrics.event("other", "http_timeout"),
    )
    handlers = _Handlers(ingress, metrics, settings, is_ready)
    app.router.add_post("/", handlers.cloudevent)
    app.router.add_post("/alertmanager", handlers.alertmanager)
    app.router.add_get("/approvals", handlers.approvals)
    app.router.add_post("/approvals/{correlation_id}", handlers.answer)
    app.router.add_get("/metrics", handlers.metrics_page)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    return app


async def start_http(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve `app`; with port 0 the kernel picks one, see `bound_port`. Stop with `runner.cleanup()`."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await GuardedSite(runner, host, port, app[LIMITS]).start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    return int(runner.addresses[0][1])


class _Handlers:
    def __init__(self, ingress: Ingress, metrics: Metrics, settings: Settings, is_ready: Callable[[], bool]) -> None:
        self.ingress = ingress
        self.metrics = metrics
        self.settings = settings
        self.is_ready = is_ready
        self.token = token_of(settings.http_token)  # an empty token means none is configured

    async def cloudevent(self, request: web.Request) -> web.Response:
        return await self._ingest(request, self._decode_cloudevent, lambda body: _cloudevent_headers(request),
                                  _accepted_empty)

    async def alertmanager(self, request: web.Request) -> web.Response:
        return await self._ingest(request, self._wrap_webhook, self._webhook_attributes, _accepted_with_id)

    async def approvals(self, request: web.Request) -> web.Response:
        if (refused := self._approvals_refused(request)) is not None:
            return refused
        try:
            pending = await self.ingress.pending_approvals()
        except TransientError as exc:
            return _error(503, "unavailable", str(exc))
        return web.json_response({"approvals": [approval.summary() for approval in pending]})

    async def answer(self, request: web.Request) -> web.Response:
        """`{"approved": true|false, "by": "who"}`: 202 once the answer is on the input exchange."""
        if (refused := self._approvals_refused(request)) is not None:
            return refused
        correlation_id = request.match_info["correlation_id"]
        try:
            async with asyncio.timeout(self.settings.http_body_timeout_s):
                body, truncated = await _read_limited(request, 4096)
            payload = orjson.loads(body)
            if truncated or not isinstance(payload, dict):
                raise ValueError("not a JSON object")
            approved, by = payload.get("approved"), payload.get("by")
            if not isinstance(approved, bool) or not isinstance(by, str) or not 0 < len(by.strip()) <= 200:
                raise ValueError("`approved` must be true or false and `by` the name of who answers")
        except TimeoutError:
            return await self._body_timed_out(request)
        except ValueError as exc:  # orjson's JSONDecodeError is one
            return _error(400, "invalid_answer", f'send {{"approved": true|false, "by": "your name"}}: {exc}')
        try:
            approval = await self.ingress.answer_approval(correlation_id, approved, by.strip())
        except NotWaiting as exc:
            return _error(404 if exc.state is None else 409, "not_waiting", str(exc))
        except Exception as exc:  # isolation point: Redis or the broker; the person can try again
            log.warning("answering approval %s failed: %s", correlation_id, exc)
            return _error(503, "unavailable", f"the answer could not be passed on; retry: {exc}")
        log.info("approval %s answered over HTTP: %s by %s", correlation_id, "approved" if approved else "denied", by)
        return web.json_response({"correlation_id": correlation_id, "function": approval.function,
                                  "answer": "approved" if approved else "denied", "by": by.strip()}, status=202)

    def _approvals_refused(self, request: web.Request) -> web.Response | None:
        """Approvals need the bearer token: without one configured, nobody may answer over HTTP."""
        if self.token is None:
            return _error(403, "no_token", "answering approvals over HTTP needs AGENT_SRE_HTTP_TOKEN(_FILE) set; "
                          "or use `agent-sre approvals`")
        if not self._authorized(request):
            return _error(401, "unauthorized", REFUSAL, headers=CHALLENGE)
        return None

    async def metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(self, request: web.Request) -> web.Response:
        ready = self.is_ready()
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    def _decode_cloudevent(self, body: bytes, request: web.Request) -> InboundEvent:
        # Only ce-* headers: Authorization, Host, cookies and the like never reach the broker.
        return decode_event(
            body, _cloudevent_headers(request, with_content_type=False),
            content_type=request.content_type, max_bytes=self.settings.max_event_bytes,
        )

    def _wrap_webhook(self, body: bytes, request: web.Request) -> InboundEvent:
        return decode_event(body, self._webhook_attributes(body), max_bytes=self.settings.max_event_bytes)

    def _webhook_attributes(self, body: bytes) -> dict[str, str]:
        # The id hashes the body, so the identical copy an HA pair sends is deduplicated downstream.
        return {
            "specversion": "1.0",
            "id": hashlib.sha256(body).hexdigest()[:32],
            "type": self.settings.accepted_types[0],
            "source": ALERTMANAGER_SOURCE,
            "content-type": "application/json",
        }

    async def _ingest(
        self,
        request: web.Request,
        decode: Callable[[bytes, web.Request], InboundEvent],
        dead_letter_headers: Callable[[bytes], dict[str, str]],
        accepted: Callable[[InboundEvent, int], web.Response],
    ) -> web.Response:
        if not self._authorized(request):
            self.metrics.event("other", "http_unauthorized")
            return _error(401, "unauthorized", REFUSAL, headers=CHALLENGE)
        try:
            async with asyncio.timeout(self.settings.http_body_timeout_s):
                body, truncated = await _read_limited(request, self.settings.max_event_bytes)
        except TimeoutError:
            return await self._body_timed_out(request)
        try:
            if truncated:
                raise InputError("too_large", f"body is over the {self.settings.max_event_bytes}-byte limit "
                                 f"(the dead letter keeps its first {len(body)} bytes)")
            event = decode(body, request)
            if event.type not in self.settings.inbound_types:
                raise InputError("unsupported_type", f"CloudEvent type {event.type!r} is not accepted; "
                                 f"send one of {', '.join(self.settings.inbound_types)}")
            if event.type == RESULT_TYPE:
                alerts: list[object] = [parse_result(event.data)]
            elif event.type in APPROVAL_ANSWER_TYPES:
                alerts = [parse_approval_answer(event.data)]
            else:
                alerts = list(parse_alerts(event.data))
            headers = _knative_headers(event, request)
        except InputError as exc:
            return await self._refuse(body, dead_letter_headers(body), exc)
        try:
            await self.ingress.publish_input(orjson.dumps(event.data), headers, "application/json", event.id)
        except Exception:
            log.exception("publishing HTTP event %s failed", event.id)
            self.metrics.event(event.type, "http_unavailable")
            return _error(503, "unavailable", "the broker did not confirm the event; retry later")
        self.metrics.event(event.type, "http_accepted")
        log.info("event %s accepted over HTTP (%d alerts, %s)", event.id, len(alerts), request.path)
        return accepted(event, len(alerts))

    async def _refuse(self, body: bytes, headers: dict[str, str], exc: InputError) -> web.Response:
        try:
            await self.ingress.dead_letter_raw(body, headers, exc.reason, str(exc))
        except Exception:
            # A 400 would make the sender drop the body; a 503 makes it try again.
            log.exception("dead-lettering a refused HTTP body (%s) failed", exc.reason)
            self.metrics.event("other", "http_unavailable")
            return _error(503, "unavailable", "the event was refused and could not be dead-lettered; retry later")
        self.metrics.dead_letter(exc.reason)
        self.metrics.event("other", "http_invalid")
        log.warning("HTTP event refused and dead-lettered: %s: %s", exc.reason, exc)
        return _error(400, exc.reason, str(exc))

    async def _body_timed_out(self, request: web.Request) -> web.StreamResponse:
        # A 503, not a 408: Alertmanager drops every 4xx, and Knative's contract lists 408 among the
        # 4xx it need not retry (its dispatchers do). There is no whole body to dead-letter; the
        # sender still has it.
        self.metrics.event("other", "http_timeout")
        log.warning("HTTP body for %s not received in %ss; connection closed", request.path,
                    self.settings.http_body_timeout_s)
        message = f"the body did not arrive within {self.settings.http_body_timeout_s} s; retry"
        response = _error(503, "body_timeout", message)
        response.force_close()
        await response.prepare(request)
        await response.write_eof()
        # Close now: aiohttp would otherwise go on reading the unread body for its lingering time.
        request.protocol.force_close()
        return response

    def _authorized(self, request: web.Request) -> bool:
        return authorized(request.headers.get("Authorization", ""), self.token)


async def _read_limited(request: web.Request, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of the body, and whether more followed: an oversized body is not read in full."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await request.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    body = b"".join(chunks)
    return body[:limit], size > limit


def _cloudevent_headers(request: web.Request, *, with_content_type: bool = True) -> dict[str, str]:
    headers = {name.lower(): value for name, value in request.headers.items() if name.lower().startswith("ce-")}
    if with_content_type and request.headers.get("Content-Type"):
        headers["content-type"] = request.headers["Content-Type"]
    return headers


def _knative_headers(event: InboundEvent, request: web.Request) -> dict[str, str]:
    """Bare attribute names, as the Knative broker writes them; the body is always the data as JSON.

    decode_event checked the attributes as the consumer does, so trigger_headers takes them all.
    """
    headers = trigger_headers({**event.attributes, "datacontenttype": "application/json"})
    headers.update({name: request.headers[name] for name in _TRACING if name in request.headers})
    return headers


def _accepted_empty(event: InboundEvent, alerts: int) -> web.Response:
    """A Knative delivery's success: no body and no content type, which no broker reads as a reply."""
    return web.Response(status=202)


def _accepted_with_id(event: InboundEvent, alerts: int) -> web.Response:
    # Alertmanager drains and ignores the body; a person with curl sees what was taken.
    return web.json_response({"accepted": event.id, "alerts": alerts}, status=202)


def _error(status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    # The JSON body stays on errors, for `POST /` too: Knative checks a reply for an event only
    # after a successful delivery; a failed one's body only goes, base64 and cut at 1,024
    # characters, into the `knativeerrordata` extension of the event it dead-letters.
    return web.json_response({"error": reason, "message": message}, status=status, headers=headers)
