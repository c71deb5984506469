"""CloudEvent decoding: every inbound encoding of FORMATS.md, and the trigger's outbound headers.

The last part sends the same events through every path in (AMQP, the HTTP endpoint, `select`)
and checks that all of them give the same verdict.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import aiohttp
import orjson
import pytest

from agent_sre.cli.select import alerts_from_json
from agent_sre.errors import InputError
from agent_sre.schemas.cloudevent import decode_event, normalise_headers, trigger_headers
from agent_sre.settings import Settings
from agent_sre.worker.http import bound_port, create_app, start_http
from agent_sre.worker.metrics import Metrics

ALERT = {"labels": {"alertname": "KubePodCrashLooping", "pod": "api-1", "namespace": "shop"}}
BODY = orjson.dumps(ALERT)
TYPE = "io.homelab.prometheus.alert.fired"
LIMIT = 1_048_576
MINIMAL = {"type": TYPE, "source": "/prom"}  # the attributes without which no event is taken


def decode(body: bytes = BODY, headers: dict | None = None, **kwargs: object):
    return decode_event(body, headers, max_bytes=LIMIT, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(
            {"specversion": "1.0", "id": "e-1", "type": TYPE, "source": "/prom", "content-type": "application/json"},
            id="knative-bare",
        ),
        pytest.param({"ce-specversion": "1.0", "ce-id": "e-1", "ce-type": TYPE, "ce-source": "/prom"}, id="ce-"),
        pytest.param({"Ce-Specversion": "1.0", "Ce-Id": "e-1", "Ce-Type": TYPE, "Ce-Source": "/prom"}, id="Ce-mixed"),
        pytest.param(
            {"cloudEvents_specversion": "1.0", "cloudEvents_id": "e-1", "cloudEvents_type": TYPE,
             "cloudEvents_source": "/prom"},
            id="cloudEvents_",
        ),
        pytest.param(
            {"cloudEvents:specversion": "1.0", "CLOUDEVENTS:ID": "e-1", "cloudevents:Type": TYPE,
             "CloudEvents:source": "/prom"},
            id="cloudEvents:-mixed",
        ),
    ],
)
def test_binary_encodings_give_the_same_event(headers: dict) -> None:
    event = decode(headers=headers)

    assert event.type == TYPE
    assert event.id == "e-1"
    assert event.attributes["source"] == "/prom"
    assert event.attributes["specversion"] == "1.0"
    assert event.data == ALERT


def test_knative_content_type_header_becomes_datacontenttype() -> None:
    event = decode(headers={**MINIMAL, "content-type": "application/json"})

    assert event.attributes["datacontenttype"] == "application/json"
    assert "content-type" not in event.attributes


def test_tracing_and_x_headers_are_skipped_and_unknown_ones_kept_as_extensions() -> None:
    headers = {
        **MINIMAL,
        "traceparent": "00-abc-def-01",
        "tracestate": "k=v",
        "x-death": [{"count": 1}],
        "X-Retry-Attempt": 2,
        "knativeerrorcode": "500",
    }

    attributes = decode(headers=headers).attributes

    assert not {"traceparent", "tracestate", "x-death", "x-retry-attempt"} & set(attributes)
    assert attributes["knativeerrorcode"] == "500"


def test_bytes_and_datetime_header_values_become_text() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

    attributes = normalise_headers({"type": TYPE.encode(), "id": b"e-7", "time": when})

    assert attributes["type"] == TYPE
    assert attributes["id"] == "e-7"
    assert attributes["time"].startswith("2026-01-02T03:04:05")


def test_structured_mode_with_data() -> None:
    body = orjson.dumps({"specversion": "1.0", "id": "s-1", "type": TYPE, "source": "/prom", "data": ALERT})

    event = decode(body, {}, content_type="application/cloudevents+json")

    assert (event.type, event.id, event.attributes["source"]) == (TYPE, "s-1", "/prom")
    assert event.data == ALERT
    assert "data" not in event.attributes


def test_structured_mode_with_data_base64() -> None:
    body = orjson.dumps(
        {"specversion": "1.0", "id": "s-2", "type": TYPE, "source": "/prom",
         "data_base64": base64.b64encode(BODY).decode()}
    )

    event = decode(body, None, content_type="application/cloudevents+json; charset=utf-8")

    assert event.data == ALERT
    assert "data_base64" not in event.attributes


def test_structured_mode_detected_from_the_content_type_header() -> None:
    body = orjson.dumps({"specversion": "1.0", "id": "s-3", "type": TYPE, "source": "/prom", "data": ALERT})

    event = decode(body, {"content-type": "application/cloudevents+json"})

    assert event.data == ALERT


def test_seeds_lenient_structured_body_with_attributes_in_headers() -> None:
    # The seeds' curl: structured content type, Ce-* headers, and a body holding only `data`.
    headers = {"Ce-Type": TYPE, "Ce-Source": "/prometheus/alerts"}

    event = decode(orjson.dumps({"data": ALERT}), headers, content_type="application/cloudevents+json")

    assert event.type == TYPE
    assert event.attributes["source"] == "/prometheus/alerts"
    assert event.data == ALERT
    assert event.id  # derived, since neither the headers nor the body gave one


def test_missing_id_falls_back_to_message_id_then_to_a_body_hash() -> None:
    with_message_id = decode(headers=MINIMAL, message_id="m-9")
    first = decode(headers=MINIMAL)
    again = decode(headers=MINIMAL)

    assert with_message_id.id == "m-9"
    assert first.id == again.id  # a redelivery of the same body keeps its id


def test_a_null_header_is_no_attribute_and_never_the_text_none() -> None:
    event = decode(headers={**MINIMAL, "id": None, "subject": None}, message_id="m-9")

    assert event.id == "m-9"
    assert "subject" not in event.attributes


def test_over_the_size_limit_is_too_large() -> None:
    with pytest.raises(InputError) as caught:
        decode_event(b"{" + b" " * 2000 + b"}", {"type": TYPE}, max_bytes=1024)

    assert caught.value.reason == "too_large"


@pytest.mark.parametrize("body", [b"not json", b"", b"{\"labels\": ", b"\xff\xfe"])
def test_not_json_is_invalid_json(body: bytes) -> None:
    with pytest.raises(InputError) as caught:
        decode(body, {"type": TYPE})

    assert caught.value.reason == "invalid_json"


@pytest.mark.parametrize(
    ("body", "headers", "content_type"),
    [
        pytest.param(BODY, {"specversion": "1.0", "id": "e-1", "source": "/prom"}, None, id="binary-no-type"),
        pytest.param(BODY, {"type": ""}, None, id="binary-empty-type"),
        pytest.param(orjson.dumps({"id": "s", "data": ALERT}), {}, "application/cloudevents+json", id="structured"),
        pytest.param(b"[1, 2]", {}, "application/cloudevents+json", id="structured-not-object"),
    ],
)
def test_missing_type_is_invalid_cloudevent(body: bytes, headers: dict, content_type: str | None) -> None:
    with pytest.raises(InputError) as caught:
        decode(body, headers, content_type=content_type)

    assert caught.value.reason == "invalid_cloudevent"


def test_bad_data_base64_is_invalid_cloudevent() -> None:
    body = orjson.dumps({"type": TYPE, "data_base64": "***"})

    with pytest.raises(InputError) as caught:
        decode(body, {}, content_type="application/cloudevents+json")

    assert caught.value.reason == "invalid_cloudevent"


def test_trigger_headers_use_bare_names() -> None:
    headers = trigger_headers(
        {
            "type": "io.homelab.agent-sre.lambda.trigger",
            "source": "/agent-sre/remediation",
            "id": "t-1",
            "datacontenttype": "application/json",
            "correlationid": "c-1",
        }
    )

    assert headers["type"] == "io.homelab.agent-sre.lambda.trigger"
    assert headers["source"] == "/agent-sre/remediation"
    assert headers["specversion"] == "1.0"
    assert headers["content-type"] == "application/json"
    assert headers["correlationid"] == "c-1"
    assert headers["time"].endswith("Z")
    assert not any(name.startswith(("ce-", "cloudEvents")) for name in headers)
    assert all(isinstance(value, str) for value in headers.values())


@pytest.mark.parametrize("extension", ["correlation_id", "CorrelationId", "corr-id"])
def test_trigger_headers_reject_an_invalid_extension_name(extension: str) -> None:
    with pytest.raises(ValueError):
        trigger_headers({"type": "t", "source": "/s", "id": "1", extension: "x"})


def test_trigger_headers_require_type_and_source() -> None:
    with pytest.raises(ValueError):
        trigger_headers({"id": "1", "source": "/s"})


# --- One verdict on every path -------------------------------------------------------------

GOOD = {"specversion": "1.0", "id": "p-1", "type": TYPE, "source": "/prom"}
# What the broker and our retries add to a message; none of it is a CloudEvent attribute.
BOOKKEEPING = {"x-agent-sre-attempts": 2, "x-death": [{"count": 1, "reason": "rejected"}], "x-delivery-count": 1}
BAD = "invalid_cloudevent"

# Each case changes GOOD: a value of None leaves that attribute out.
CASES = [
    pytest.param({}, "accepted", id="plain"),
    pytest.param({"specversion": None}, "accepted", id="specversion-defaults-to-1.0"),
    pytest.param({"time": "2026-11-21T10:00:01Z"}, "accepted", id="time-utc"),
    pytest.param({"time": "2026-11-21t12:00:01.25+02:00"}, "accepted", id="time-offset-fraction"),
    pytest.param({"correlationid": "c-1", "abcdefghij0123456789": "x"}, "accepted", id="extensions-up-to-20"),
    pytest.param({"time": "yesterday"}, BAD, id="time-words"),
    pytest.param({"time": "2026-11-21"}, BAD, id="time-date-only"),
    pytest.param({"time": "2026-11-21T10:00:01"}, BAD, id="time-without-offset"),
    pytest.param({"time": "2026-13-01T00:00:00Z"}, BAD, id="time-month-13"),
    pytest.param({"specversion": "0.3"}, BAD, id="specversion-0.3"),
    pytest.param({"correlation_id": "c-1"}, BAD, id="extension-underscore"),
    pytest.param({"abcdefghij01234567890": "x"}, BAD, id="extension-21-chars"),
    pytest.param({"source": None}, BAD, id="no-source"),
]
AMQP_PREFIXES = ["", "ce-", "cloudEvents_", "cloudEvents:"]  # Knative's bare names, the SDK's, the AMQP binding's


class RecordingIngress:
    async def publish_input(self, body: bytes, headers: dict[str, str], content_type: str | None, message_id: str) -> None:
        pass

    async def dead_letter_raw(self, body: bytes, headers: dict[str, str], reason: str, error: str) -> None:
        pass


@pytest.fixture
async def endpoint() -> AsyncIterator[str]:
    settings = Settings(_env_file=None, http_token=None, accepted_types=[TYPE], http_port=0)
    runner = await start_http(create_app(RecordingIngress(), Metrics(), settings, lambda: True), "127.0.0.1", 0)
    yield f"http://127.0.0.1:{bound_port(runner)}/"
    await runner.cleanup()


def _attributes(change: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in {**GOOD, **change}.items() if value is not None}


def _amqp_verdict(body: bytes, headers: dict[str, Any], content_type: str) -> str:
    """What the consumer does with a message: decode_event on its body, headers and properties."""
    try:
        decode_event(body, headers, content_type=content_type, message_id="m-1", max_bytes=LIMIT)
    except InputError as exc:
        return exc.reason
    return "accepted"


async def _http_verdict(url: str, body: bytes, headers: dict[str, str]) -> str:
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as response:
        if response.status == 202:
            return "accepted"  # the body is empty (Knative's convention)
        answer = await response.json()
    assert response.status == 400, answer
    return str(answer["error"])


def _select_verdict(text: str) -> str:
    try:
        alerts_from_json(text)
    except InputError as exc:
        return exc.reason
    return "accepted"


@pytest.mark.parametrize(("change", "expected"), CASES)
async def test_every_path_gives_the_same_verdict(endpoint: str, change: dict[str, Any], expected: str) -> None:
    attributes = _attributes(change)
    structured = orjson.dumps({**attributes, "datacontenttype": "application/json", "data": ALERT})
    verdicts = {}
    for prefix in AMQP_PREFIXES:
        headers = {prefix + name: value for name, value in attributes.items()}
        verdicts[f"amqp {prefix or 'bare'}"] = _amqp_verdict(BODY, {**headers, **BOOKKEEPING}, "application/json")
    verdicts["amqp structured"] = _amqp_verdict(structured, BOOKKEEPING, "application/cloudevents+json")
    ce_headers = {f"ce-{name}": value for name, value in attributes.items()}
    verdicts["http binary"] = await _http_verdict(endpoint, BODY, {**ce_headers, "Content-Type": "application/json"})
    verdicts["http structured"] = await _http_verdict(
        endpoint, structured, {"Content-Type": "application/cloudevents+json"}
    )
    if "specversion" in attributes:  # select tells a CloudEvent from a bare alert by its specversion
        verdicts["select"] = _select_verdict(structured.decode())

    assert verdicts == dict.fromkeys(verdicts, expected)


@pytest.mark.parametrize(
    "when",
    [datetime(2026, 11, 21, 10, 0, 1, tzinfo=timezone.utc), datetime(2026, 11, 21, 10, 0, 1)],
    ids=["aware", "naive"],
)
def test_an_amqp_timestamp_time_is_accepted_like_its_rfc3339_text(when: datetime) -> None:
    # aio-pika hands an AMQP timestamp header over as a datetime, not as text.
    event = decode(headers={**GOOD, "time": when, **BOOKKEEPING})

    assert datetime.fromisoformat(event.attributes["time"]) == when.replace(tzinfo=timezone.utc)
    assert not set(BOOKKEEPING) & set(event.attributes)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"time": "yesterday"}, "RFC 3339"),
        ({"specversion": "0.3"}, "'0.3'"),
        ({"correlation_id": "c"}, "'correlation_id'"),
        ({"source": None}, "source"),
    ],
)
def test_a_refusal_says_what_is_wrong(change: dict[str, Any], named: str) -> None:
    with pytest.raises(InputError) as caught:
        decode(headers=_attributes(change))

    assert caught.value.reason == BAD
    assert named in str(caught.value)
