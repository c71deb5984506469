"""Trace context from an alert to its trigger (real broker and HTTP), the worker's spans (the SDK's
in-memory exporter), and their export over OTLP/HTTP to a collector that speaks the protocol."""

from __future__ import annotations

import http.server
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agent_sre import tracing
from agent_sre.cli.send import Encoding, encode_event
from agent_sre.settings import DEFAULT_EVENT_TYPE
from tests.broker_harness import crash_loop
from tests.conftest import threaded_http

pytestmark = pytest.mark.broker

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


def trace_id(traceparent: str) -> str:
    return traceparent.split("-")[1]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    yield exporter
    tracing.disable()


async def send_traced(harness: Any, encoding: Encoding = Encoding.knative) -> None:
    message = encode_event(crash_loop(), event_type=DEFAULT_EVENT_TYPE, encoding=encoding)
    prefix = "ce-" if encoding is Encoding.ce else ""
    message.headers.update({f"{prefix}traceparent": PARENT, **({} if prefix else {"tracestate": "vendor=1"})})
    exchange = await harness.channel.get_exchange(harness.settings.input_exchange)
    await exchange.publish(message, routing_key="")


@pytest.mark.parametrize("encoding", [Encoding.knative, Encoding.ce])
async def test_an_alerts_trace_context_reaches_its_trigger_with_tracing_off(start_worker, encoding: Encoding) -> None:
    harness = await start_worker()
    await send_traced(harness, encoding)
    [trigger] = await harness.triggers(1)
    assert trigger.headers["traceparent"] == PARENT  # passed on as it came: no span of ours between
    if encoding is Encoding.knative:
        assert trigger.headers["tracestate"] == "vendor=1"


async def test_an_alert_posted_over_http_keeps_its_trace_id(start_worker) -> None:
    harness = await start_worker()
    headers = {"ce-specversion": "1.0", "ce-id": "http-1", "ce-type": DEFAULT_EVENT_TYPE, "ce-source": "/test",
               "Content-Type": "application/json", "traceparent": PARENT}
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{harness.worker.http_port}/"
        async with session.post(url, data=orjson.dumps(crash_loop()), headers=headers) as response:
            assert response.status == 202
    [trigger] = await harness.triggers(1)
    assert trace_id(trigger.headers["traceparent"]) == TRACE_ID


async def test_the_worker_makes_a_span_per_step_in_the_alerts_trace(start_worker, spans: InMemorySpanExporter) -> None:
    harness = await start_worker()
    await send_traced(harness)
    [trigger] = await harness.triggers(1)
    await harness.settled(1)
    finished = {span.name: span for span in spans.get_finished_spans()}
    expected = {f"process {DEFAULT_EVENT_TYPE}", "decode", "alert KubePodCrashLooping", "selector static",
                "validate", "publish pod-restart"}
    assert expected <= finished.keys()
    assert {format(span.context.trace_id, "032x") for span in finished.values()} == {TRACE_ID}
    process, publish = finished[f"process {DEFAULT_EVENT_TYPE}"], finished["publish pod-restart"]
    assert format(process.parent.span_id, "016x") == "b7ad6b7169203331", "the input's span is the parent"
    correlation_id = trigger.headers["correlationid"]
    for name in ("alert KubePodCrashLooping", "selector static", "validate", "publish pod-restart"):
        assert finished[name].attributes[tracing.CORRELATION_ID] == correlation_id
    # The trigger names the publish span as its parent: the function's spans continue this trace
    assert trigger.headers["traceparent"] == f"00-{TRACE_ID}-{format(publish.context.span_id, '016x')}-01"


class _Collector(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append((self.path, self.headers.get("Content-Type", ""), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[str]:
    _Collector.received = []
    with threaded_http(_Collector) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def otel_env(collector: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{collector}/v1/traces")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "agent-sre-test")
    yield
    tracing.disable()


def test_spans_go_over_otlp_when_the_otel_variables_ask_and_nowhere_otherwise(otel_env, monkeypatch) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    assert tracing.configure_from_env()
    with tracing.span("selector static", correlation_id="c-1"):
        pass
    tracing.disable()  # flushes the batch
    [(path, content_type, body)] = _Collector.received
    assert path == "/v1/traces" and content_type == "application/x-protobuf"
    request = ExportTraceServiceRequest.FromString(body)
    [resource] = request.resource_spans
    service = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
    [span] = [s for scope in resource.scope_spans for s in scope.spans]
    assert service == "agent-sre-test" and span.name == "selector static"
    assert {a.key: a.value.string_value for a in span.attributes}[tracing.CORRELATION_ID] == "c-1"

    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing.configure_from_env()
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    assert not tracing.configure_from_env()
    assert tracing.outbound({"traceparent": PARENT}) == {"traceparent": PARENT}
