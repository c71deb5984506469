"""`agent-sre functions serve`: CloudEvents over HTTP, as a Knative Trigger delivers them.

POST / takes one trigger (binary mode with `ce-` headers, or structured mode). The answer:
- 200 with the result as a CloudEvent in binary mode (`ce-` headers): Knative's reply, which the
  broker delivers to the worker; with `--publish`, the result goes to the input exchange instead
  and the answer is 202 with no body;
- 202 with no body for a redelivered trigger (answered once already) or one for another function;
- 400 for a body that is no trigger (a retry cannot mend it); 503 when the run could not be
  claimed or its result published (worth a retry: the retry is a duplicate, so nothing acts twice);
- 401 without `Authorization: Bearer <AGENT_SRE_FUNCTIONS_HTTP_TOKEN>`, when that is set (a
  Knative Trigger sends none: leave it unset there, behind the broker).
GET /healthz, GET /metrics (`functions consume` serves these two alone), open for probes and scrapes.
"""

from __future__ import annotations

import logging

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..bearer import CHALLENGE, REFUSAL, authorized, token_of
from ..errors import InputError, TransientError
from .delivery import Publish, deliver
from .result import result_event
from .service import Service
from .trigger import read_trigger

log = logging.getLogger(__name__)

def create_app(service: Service, publish: Publish | None = None, triggers: bool = True) -> web.Application:
    """`triggers=False`: only /healthz and /metrics, beside `functions consume`."""
    app = web.Application(client_max_size=service.settings.max_event_bytes)
    handler = _Handler(service, publish)
    if triggers:
        app.router.add_post("/", handler.trigger)
    app.router.add_get("/healthz", handler.healthz)
    app.router.add_get("/metrics", handler.metrics)
    return app


class _Handler:
    def __init__(self, service: Service, publish: Publish | None) -> None:
        self.service = service
        self.publish = publish
        self.token = token_of(service.settings.functions_http_token)

    async def trigger(self, request: web.Request) -> web.Response:
        runner = self.service.runner
        if not authorized(request.headers.get("Authorization", ""), self.token):
            runner.metrics.invalid.labels("unauthorized").inc()
            return _problem(401, "unauthorized", REFUSAL, CHALLENGE)
        body = await request.read()
        # Only the event's own headers (and its trace context): Host, Authorization & co. are no attributes.
        headers = {k.lower(): v for k, v in request.headers.items()
                   if k.lower().startswith("ce-") or k.lower() in ("traceparent", "tracestate")}
        try:
            trigger = read_trigger(body, headers, content_type=request.content_type,
                                   max_bytes=self.service.settings.max_event_bytes)
        except InputError as exc:
            runner.metrics.invalid.labels(exc.reason).inc()
            return _problem(400, exc.reason, str(exc))
        if trigger.function not in runner.functions:
            return web.Response(status=202)
        try:
            result = await runner.run(trigger)
            if self.publish is not None:
                await deliver(runner, trigger, result, self.service.key, self.publish)
                return web.Response(status=202)
            if result is None:
                return web.Response(status=202)
            data, attributes = result_event(trigger, result, dry_run=runner.dry_run, key=self.service.key)
        except TransientError as exc:
            log.warning("trigger %s not answered: %s", trigger.id, exc)
            return _problem(503, "unavailable", str(exc))
        # HTTP binary mode: attributes as ce- headers; trace context under its own W3C names.
        reply = {k if k in ("traceparent", "tracestate") else f"ce-{k}": v
                 for k, v in attributes.items() if k != "content-type"}
        return web.Response(status=200, body=data, headers=reply, content_type="application/json")

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "functions": sorted(self.service.runner.functions)})

    async def metrics(self, request: web.Request) -> web.Response:
        payload = generate_latest(self.service.runner.metrics.registry)
        return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _problem(status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps({"error": reason, "message": message}),
                        content_type="application/json", headers=headers)
