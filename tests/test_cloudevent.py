"""CloudEvent decoding: every inbound encoding of FORMATS.md, and the trigger's outbound headers."""

from __future__ import annotations

import base64
from datetime import datetime, timezone

import orjson
import pytest

from agent_sre.errors import InputError
from agent_sre.schemas.cloudevent import decode_event, normalise_headers, trigger_headers

ALERT = {"labels": {"alertname": "KubePodCrashLooping", "pod": "api-1", "namespace": "shop"}}
BODY = orjson.dumps(ALERT)
TYPE = "io.homelab.prometheus.alert.fired"
LIMIT = 1_048_576


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
    event = decode(headers={"type": TYPE, "content-type": "application/json"})

    assert event.attributes["datacontenttype"] == "application/json"
    assert "content-type" not in event.attributes


def test_tracing_and_x_headers_are_skipped_and_unknown_ones_kept_as_extensions() -> None:
    headers = {
        "type": TYPE,
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
    with_message_id = decode(headers={"type": TYPE}, message_id="m-9")
    first = decode(headers={"type": TYPE})
    again = decode(headers={"type": TYPE})

    assert with_message_id.id == "m-9"
    assert first.id == again.id  # a redelivery of the same body keeps its id


def test_a_null_header_is_no_attribute_and_never_the_text_none() -> None:
    event = decode(headers={"type": TYPE, "id": None, "subject": None}, message_id="m-9")

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
