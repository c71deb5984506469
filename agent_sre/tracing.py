"""W3C trace context through the worker, and OpenTelemetry spans when an exporter is configured.

An input event's trace context (`traceparent` / `tracestate`: AMQP headers as the Knative broker
writes them, the HTTP request's headers, or the CloudEvents tracing extension) goes on every
event it causes, exporter or not: with tracing off it is passed on as it came.

Tracing is on when the standard OpenTelemetry variables name an exporter endpoint
(OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, and OTEL_SDK_DISABLED is not
true): spans go over OTLP/HTTP, named as the rest of OTEL_* says (OTEL_SERVICE_NAME, default
`agent-sre`). The worker then makes spans for each message (decode), each alert, each selector,
the catalog validation and each publish, with the alert's correlation id as an attribute, and the
events it publishes carry the publish span as their parent. Off, each span is a shared no-op.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

TRACE_HEADERS = ("traceparent", "tracestate")
CORRELATION_ID = "agent_sre.correlation_id"
CONSUMER, PRODUCER = trace.SpanKind.CONSUMER, trace.SpanKind.PRODUCER

_PROPAGATOR = TraceContextTextMapPropagator()
_NO_SPAN = contextlib.nullcontext()
_tracer: trace.Tracer | None = None  # None: tracing is off
_provider: Any = None


def configure_from_env() -> bool:
    """Export spans over OTLP when the OTEL_* variables ask for it; whether they do."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if not (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    service = os.environ.get("OTEL_SERVICE_NAME") or "agent-sre"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    enable(provider)
    log.info("tracing on: spans exported over OTLP as %s", service)
    return True


def enable(provider: Any) -> None:
    """Make spans with this TracerProvider (tests give one with an in-memory exporter)."""
    global _tracer, _provider
    _tracer, _provider = provider.get_tracer("agent_sre"), provider


def disable() -> None:
    """Stop making spans; export what is waiting first."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def context_of(trace_headers: Mapping[str, str]) -> Context | None:
    """The remote parent an input's trace headers name, if any."""
    return _PROPAGATOR.extract(dict(trace_headers)) if trace_headers else None


def span(name: str, *, parent: Context | None = None, kind: trace.SpanKind = trace.SpanKind.INTERNAL,
         start_time: int | None = None, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """A span, current while the block runs, child of `parent` or of the current span; off, a no-op."""
    if _tracer is None:
        return _NO_SPAN
    return _tracer.start_as_current_span(name, context=parent, kind=kind, start_time=start_time,
                                         attributes=_attributes(attributes))


def interval(name: str, start_time: int, end_time: int, **attributes: Any) -> None:
    """A span for work already done (in ns since the epoch), child of the current span."""
    if _tracer is not None:
        _tracer.start_span(name, start_time=start_time, attributes=_attributes(attributes)).end(end_time=end_time)


def outbound(inbound: Mapping[str, str]) -> dict[str, str]:
    """The trace headers for an event caused by the current work: the current span as parent when
    tracing is on; else the input's own headers, passed on as they came."""
    carrier: dict[str, str] = {}
    if _tracer is not None:
        _PROPAGATOR.inject(carrier)
    return carrier or {name: inbound[name] for name in TRACE_HEADERS if inbound.get(name)}


def _attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {("agent_sre." + key if "." not in key else key): value for key, value in attributes.items()
            if value is not None}
