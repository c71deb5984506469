"""The HTTP ingress on a real port, publishing through a real RabbitMQ."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import orjson
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from pydantic import SecretStr

from agent_sre.schemas.alert import parse_alerts
from agent_sre.schemas.catalog import load_catalog
from agent_sre.settings import DEFAULT_EVENT_TYPE, RESULT_TYPE, Settings
from agent_sre.worker.deadletter import LAST_ERROR, REASON
from agent_sre.worker.http import Ingress, bound_port, create_app, start_http
from agent_sre.worker.metrics import Metrics
from agent_sre.worker.topology import Topology, declare, dlq_name

pytestmark = pytest.mark.broker

ALERT = {
    "status": "firing",
    "labels": {"alertname": "KubePodCrashLooping", "pod": "web-1", "namespace": "shop"},
    "annotations": {"summary": "pod web-1 is crash looping"},
    "startsAt": "2026-11-21T10:00:00Z",
    "fingerprint": "0123456789abcdef",
}
WEBHOOK = {
    "version": "4", "status": "firing", "receiver": "agent-sre", "groupKey": "{}:{}", "truncatedAlerts": 0,
    "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am:9093",
    "alerts": [ALERT, {**ALERT, "labels": {**ALERT["labels"], "pod": "web-2"}, "fingerprint": "fedcba9876543210"}],
}
CE_HEADERS = {
    "ce-specversion": "1.0", "ce-id": "evt-1", "ce-type": DEFAULT_EVENT_TYPE,
    "ce-source": "/prometheus/alerts", "ce-time": "2026-11-21T10:00:01Z", "Content-Type": "application/json",
}
SAMPLE_WEBHOOK = Path(__file__).parent.parent / "examples" / "alertmanager-webhook.json"


class BrokerIngress:
    """The worker's side of the Ingress protocol, done with plain aio-pika publishes."""

    def __init__(self, topology: Topology, settings: Settings) -> None:
        self.topology = topology
        self.settings = settings

    async def publish_input(self, body: bytes, headers: dict[str, str], content_type: str | None, message_id: str) -> None:
        message = aio_pika.Message(body, headers=headers, content_type=content_type, message_id=message_id,
                                   delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await self.topology.input_exchange.publish(message, routing_key="", mandatory=True)

    async def dead_letter_raw(self, body: bytes, headers: dict[str, str], reason: str, error: str) -> None:
        message = aio_pika.Message(body, headers={**headers, REASON: reason, LAST_ERROR: error},
                                   delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await self.topology.default_exchange.publish(message, routing_key=dlq_name(self.settings.input_queue))


class BrokerDown:
    async def publish_input(self, body: bytes, headers: dict[str, str], content_type: str | None, message_id: str) -> None:
        raise ConnectionError("broker connection lost")

    async def dead_letter_raw(self, body: bytes, headers: dict[str, str], reason: str, error: str) -> None:
        raise ConnectionError("broker connection lost")


@dataclass
class Server:
    url: str
    metrics: Metrics


Serve = Callable[..., Awaitable[Server]]


@pytest.fixture
async def topology(broker_settings: Settings, amqp_connection: aio_pika.abc.AbstractRobustConnection) -> Topology:
    return await declare(await amqp_connection.channel(), broker_settings)


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners = []

    async def start(settings: Settings, ingress: Ingress, is_ready: Callable[[], bool] = lambda: True) -> Server:
        metrics = Metrics()
        runner = await start_http(create_app(ingress, metrics, settings, is_ready), "127.0.0.1", 0)
        runners.append(runner)
        return Server(f"http://127.0.0.1:{bound_port(runner)}", metrics)

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def server(serve: Serve, broker_settings: Settings, topology: Topology) -> Server:
    return await serve(broker_settings, BrokerIngress(topology, broker_settings))


async def drain(queue: AbstractQueue) -> list[AbstractIncomingMessage]:
    messages = []
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        messages.append(message)
    return messages


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]  # as sent, names lower-cased

    def json(self) -> Any:
        assert self.headers.get("content-type", "").startswith("application/json"), self.headers
        return orjson.loads(self.body)


async def post(http: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str]) -> Reply:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with http.post(url, data=data, headers=headers) as response:
        sent = {name.lower(): value for name, value in response.headers.items()}
        return Reply(response.status, await response.read(), sent)


def assert_knative_success(reply: Reply) -> None:
    """202 with nothing a broker could take for a reply: Knative's channel-based broker turns a 2xx
    whose body is neither empty nor a CloudEvent into a 502, retried and then dead-lettered."""
    assert (reply.status, reply.body) == (202, b"")
    assert reply.headers.get("content-length") == "0"
    assert "content-type" not in reply.headers
    assert not [name for name in reply.headers if name.startswith("ce-")]


async def test_binary_cloudevent_lands_on_the_input_queue_with_bare_headers(server, http, topology):
    headers = {**CE_HEADERS, "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    reply = await post(http, server.url + "/", ALERT, headers)

    assert_knative_success(reply)
    [message] = await drain(topology.input_queue)
    assert orjson.loads(message.body) == ALERT
    assert message.message_id == "evt-1"
    assert message.content_type == "application/json"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    # x-* headers are the broker's own (a quorum queue adds x-delivery-count).
    assert {k: v for k, v in message.headers.items() if not k.startswith("x-")} == {
        "specversion": "1.0", "id": "evt-1", "type": DEFAULT_EVENT_TYPE, "source": "/prometheus/alerts",
        "time": "2026-11-21T10:00:01Z", "content-type": "application/json", "traceparent": headers["traceparent"],
    }
    assert await drain(topology.dead_letter_queue) == []


async def test_structured_cloudevent_is_republished_in_binary_mode(server, http, topology):
    event = {"specversion": "1.0", "id": "evt-2", "type": DEFAULT_EVENT_TYPE, "source": "/prom",
             "datacontenttype": "application/json", "severity": "critical", "data": ALERT}
    reply = await post(http, server.url + "/", event, {"Content-Type": "application/cloudevents+json"})

    assert_knative_success(reply)
    [message] = await drain(topology.input_queue)
    assert message.message_id == "evt-2"
    assert orjson.loads(message.body) == ALERT
    assert message.headers["type"] == DEFAULT_EVENT_TYPE
    assert message.headers["severity"] == "critical"  # extensions keep their own names
    assert "data" not in message.headers


async def test_seed_curl_form_takes_attributes_from_ce_headers(server, http, topology):
    # The seeds' curl: structured content type, only `data` in the body, attributes in Ce-* headers.
    body = orjson.dumps({"data": ALERT})
    headers = {"Content-Type": "application/cloudevents+json", "Ce-Type": DEFAULT_EVENT_TYPE, "Ce-Source": "/prom"}
    reply = await post(http, server.url + "/", body, headers)

    assert_knative_success(reply)
    [message] = await drain(topology.input_queue)
    assert message.message_id == hashlib.sha256(body).hexdigest()[:32]
    assert message.headers["type"] == DEFAULT_EVENT_TYPE and message.headers["source"] == "/prom"
    assert orjson.loads(message.body) == ALERT


async def test_alertmanager_webhook_is_wrapped_with_a_body_hash_id(server, http, topology):
    body = orjson.dumps(WEBHOOK)
    # An HA pair sends the same notification twice: both get the same id, for downstream dedup.
    for _ in range(2):
        reply = await post(http, server.url + "/alertmanager", body, {"Content-Type": "application/json"})
        # Alertmanager ignores the body; this one says what was taken, for a person with curl.
        answer = reply.json()
        assert (reply.status, answer) == (202, {"accepted": hashlib.sha256(body).hexdigest()[:32], "alerts": 2})

    messages = await drain(topology.input_queue)
    assert len(messages) == 2
    for message in messages:
        assert message.headers["type"] == DEFAULT_EVENT_TYPE
        assert message.headers["source"] == "/alertmanager"
        assert message.headers["id"] == message.message_id == answer["accepted"]
        assert orjson.loads(message.body) == WEBHOOK


async def test_the_sample_webhook_is_taken_as_one_crash_looping_pod(server, http, topology):
    # examples/alertmanager-webhook.json, which docker-compose.yml and the README send with curl.
    body = SAMPLE_WEBHOOK.read_bytes()

    reply = await post(http, server.url + "/alertmanager", body, {"Content-Type": "application/json"})

    assert reply.status == 202
    assert reply.json() == {"accepted": hashlib.sha256(body).hexdigest()[:32], "alerts": 1}
    [message] = await drain(topology.input_queue)
    assert orjson.loads(message.body) == orjson.loads(body)
    assert await drain(topology.dead_letter_queue) == []
    [alert] = parse_alerts(orjson.loads(message.body))
    assert alert.firing and alert.alertname == "KubePodCrashLooping"
    # What a pod restart acts on comes from the alert's labels alone.
    assert load_catalog().resolve("pod-restart", alert) == {"name": "api-7d9f", "namespace": "shop",
                                                            "type": "CrashLoopBackOff"}


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [(None, 401), ("Bearer wrong", 401), ("Basic czNjcmV0", 401), ("bearer s3cret", 202), ("Bearer s3cret", 202)],
)
async def test_configured_token_is_required(serve, http, broker_settings, topology, authorization, expected):
    settings = broker_settings.model_copy(update={"http_token": SecretStr("s3cret")})
    server = await serve(settings, BrokerIngress(topology, settings))
    auth = {"Authorization": authorization} if authorization else {}

    reply = await post(http, server.url + "/", ALERT, {**CE_HEADERS, **auth})
    webhook_reply = await post(http, server.url + "/alertmanager", WEBHOOK, auth)

    assert (reply.status, webhook_reply.status) == (expected, expected)
    queued = await drain(topology.input_queue)
    if expected == 401:
        assert reply.json()["error"] == "unauthorized"
        assert reply.headers["www-authenticate"] == "Bearer"
        assert queued == [] and await drain(topology.dead_letter_queue) == []
    else:
        assert_knative_success(reply)
        assert len(queued) == 2
        assert all("authorization" not in {k.lower() for k in m.headers} for m in queued)


async def test_without_a_configured_token_any_caller_is_accepted(server, http, topology):
    reply = await post(http, server.url + "/", ALERT, {**CE_HEADERS, "Authorization": "Bearer whatever"})
    assert_knative_success(reply)
    assert len(await drain(topology.input_queue)) == 1


NO_ALERTNAME = {"labels": {"severity": "page"}}


async def test_a_functions_result_is_taken_like_an_alert(server, http, topology):
    result = {"correlation_id": "corr-1", "status": "failed", "message": "pod not found"}
    reply = await post(http, server.url + "/", result, {**CE_HEADERS, "ce-type": RESULT_TYPE})
    assert_knative_success(reply)
    [message] = await drain(topology.input_queue)
    assert message.message_id == "evt-1"
    assert orjson.loads(message.body) == result and message.headers["type"] == RESULT_TYPE


@pytest.mark.parametrize(
    ("path", "body", "headers", "reason"),
    [
        ("/", b"{not json", CE_HEADERS, "invalid_json"),
        ("/", orjson.dumps(NO_ALERTNAME), CE_HEADERS, "missing_alertname"),
        ("/", orjson.dumps(ALERT), {**CE_HEADERS, "ce-type": "com.example.other"}, "unsupported_type"),
        ("/", orjson.dumps(ALERT), {k: v for k, v in CE_HEADERS.items() if k != "ce-source"}, "invalid_cloudevent"),
        ("/", orjson.dumps({**ALERT, "annotations": {"x": "y" * 3_000_000}}), CE_HEADERS, "too_large"),
        ("/alertmanager", orjson.dumps({**WEBHOOK, "alerts": []}), {}, "invalid_alert"),
        ("/alertmanager", b"[1, 2", {}, "invalid_json"),
        ("/", orjson.dumps({"correlation_id": "c", "status": "ok"}), {**CE_HEADERS, "ce-type": RESULT_TYPE}, "invalid_result"),
    ],
    ids=["not-json", "no-alertname", "unsupported-type", "no-source", "over-size", "empty-webhook", "webhook-not-json",
         "bad-result"],
)
async def test_bad_input_is_refused_and_dead_lettered(serve, http, broker_settings, topology, path, body, headers, reason):
    settings = broker_settings.model_copy(update={"max_event_bytes": 2048})
    server = await serve(settings, BrokerIngress(topology, settings))

    reply = await post(http, server.url + path, body, headers)

    # A final 400 for Knative and Alertmanager alike; the JSON reason stays, for `POST /` too:
    # Knative reads a failed delivery's body only into the `knativeerrordata` of its dead letter.
    answer = reply.json()
    assert reply.status == 400 and answer["error"] == reason and answer["message"]
    assert await drain(topology.input_queue) == []
    [dead] = await drain(topology.dead_letter_queue)
    assert dead.headers[REASON] == reason and dead.headers[LAST_ERROR] == answer["message"]
    assert dead.body == body[:2048]  # the raw body; an oversized one only up to the limit
    if path == "/":
        assert dead.headers["ce-type"] == headers["ce-type"]
    else:
        assert dead.headers["source"] == "/alertmanager"
    assert server.metrics.dead_letters.labels(reason)._value.get() == 1
    assert server.metrics.events.labels("other", "http_invalid")._value.get() == 1


async def test_broker_down_answers_503_so_senders_retry(serve, http, broker_settings):
    server = await serve(broker_settings, BrokerDown())

    valid = await post(http, server.url + "/", ALERT, CE_HEADERS)
    invalid = await post(http, server.url + "/", b"{not json", CE_HEADERS)
    webhook = await post(http, server.url + "/alertmanager", WEBHOOK, {})

    # 5xx: retried by Knative's dispatchers and by Alertmanager.
    assert (valid.status, invalid.status, webhook.status) == (503, 503, 503)
    assert valid.json()["error"] == "unavailable"
    assert server.metrics.events.labels(DEFAULT_EVENT_TYPE, "http_unavailable")._value.get() == 2


async def test_metrics_health_and_readiness(serve, http, broker_settings, topology):
    ready = False
    server = await serve(broker_settings, BrokerIngress(topology, broker_settings), lambda: ready)

    async with http.get(server.url + "/readyz") as response:
        assert response.status == 503
    ready = True
    async with http.get(server.url + "/readyz") as response:
        assert response.status == 200
    async with http.get(server.url + "/healthz") as response:
        assert response.status == 200
    await post(http, server.url + "/", ALERT, CE_HEADERS)
    async with http.get(server.url + "/metrics") as response:
        text = await response.text()
    assert response.status == 200 and response.content_type == "text/plain"
    assert f'agent_sre_events_total{{outcome="http_accepted",type="{DEFAULT_EVENT_TYPE}"}} 1.0' in text
    assert "# TYPE agent_sre_dead_letters_total counter" in text


# --- Slow clients and the connection cap (http_guard.py) ---------------------------------------

class RecordingIngress:
    """No broker: records what the ingress was asked to publish; `delay` makes the publish slow."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.published: list[bytes] = []
        self.dead_lettered: list[str] = []

    async def publish_input(self, body: bytes, headers: dict[str, str], content_type: str | None, message_id: str) -> None:
        await asyncio.sleep(self.delay)
        self.published.append(body)

    async def dead_letter_raw(self, body: bytes, headers: dict[str, str], reason: str, error: str) -> None:
        self.dead_lettered.append(reason)


def guarded(settings: Settings, **limits: Any) -> Settings:
    return settings.model_copy(update={"http_header_timeout_s": 0.5, "http_body_timeout_s": 1.0, **limits})


async def connect(server: Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", int(server.url.rsplit(":", 1)[1]))


async def read_until_closed(reader: asyncio.StreamReader, within: float) -> tuple[bytes, float]:
    """Everything the server sends before it closes, and how long that took; fails after `within` s."""
    started = time.monotonic()
    try:
        data = await asyncio.wait_for(reader.read(), within)
    except ConnectionResetError:
        data = b""
    return data, time.monotonic() - started


def request_head(length: int) -> bytes:
    lines = [f"{name}: {value}" for name, value in CE_HEADERS.items()]
    return ("POST / HTTP/1.1\r\nHost: test\r\n" + "\r\n".join(lines) + f"\r\nContent-Length: {length}\r\n\r\n").encode()


async def test_a_client_that_stalls_in_its_head_is_closed(serve, broker_settings):
    server = await serve(guarded(broker_settings), RecordingIngress())
    reader, writer = await connect(server)
    writer.write(b"POST / HTTP/1.1\r\nHost: test\r\nCe-Ty")  # half a header line, then nothing

    data, took = await read_until_closed(reader, within=3)

    assert data == b"" and 0.4 < took < 1.5  # aborted at the 0.5 s head deadline, not answered
    assert server.metrics.events.labels("other", "http_timeout")._value.get() == 1
    writer.close()


async def test_a_client_that_trickles_its_body_is_answered_503_and_closed(serve, broker_settings):
    ingress = RecordingIngress()
    server = await serve(guarded(broker_settings), ingress)
    body = orjson.dumps(ALERT)
    reader, writer = await connect(server)
    writer.write(request_head(len(body)))

    async def trickle() -> None:
        for byte in body:  # one byte every 50 ms: the whole body would take over 5 s
            writer.write(bytes([byte]))
            await asyncio.sleep(0.05)

    trickling = asyncio.create_task(trickle())
    data, took = await read_until_closed(reader, within=4)
    trickling.cancel()

    # A 503, which Alertmanager and Knative retry; nothing half-read is published or dead-lettered.
    assert data.startswith(b"HTTP/1.1 503") and b'"body_timeout"' in data
    assert 0.9 < took < 2.0
    assert ingress.published == [] and ingress.dead_lettered == []
    writer.close()


async def test_past_max_connections_new_ones_are_refused_until_some_go(serve, broker_settings, http):
    ingress = RecordingIngress()
    server = await serve(guarded(broker_settings, http_header_timeout_s=30, http_max_connections=2), ingress)
    stalled = [await connect(server) for _ in range(2)]
    for _, writer in stalled:
        writer.write(b"POST / HTTP/1.1\r\n")
        await writer.drain()
    await asyncio.sleep(0.1)  # both admitted before the next one knocks

    reader, writer = await connect(server)
    data, took = await read_until_closed(reader, within=2)

    assert data.startswith(b"HTTP/1.1 503") and took < 1
    assert server.metrics.events.labels("other", "http_refused")._value.get() == 1
    writer.close()
    for _, stalled_writer in stalled:
        stalled_writer.close()
        await stalled_writer.wait_closed()
    for _ in range(50):  # the server notices the closes on its next loop turns
        try:
            status = (await post(http, server.url + "/", ALERT, CE_HEADERS)).status
        except aiohttp.ClientConnectionError:
            status = 0
        if status == 202:
            break
        await asyncio.sleep(0.02)
    assert status == 202 and len(ingress.published) == 1


async def test_normal_requests_pass_the_guard_even_when_the_publish_is_slow(serve, broker_settings, http):
    # The publish outlasts the head deadline: that deadline must not run while a handler does.
    ingress = RecordingIngress(delay=0.8)
    server = await serve(guarded(broker_settings), ingress)

    for _ in range(2):  # the second on the kept-alive connection, its head deadline restarted
        assert_knative_success(await post(http, server.url + "/", ALERT, CE_HEADERS))
    assert len(ingress.published) == 2
    assert server.metrics.events.labels("other", "http_timeout")._value.get() == 0
