"""Results signed by a function (AGENT_SRE_RESULT_KEY) and checked by the worker: what the function
publishes passes, an unsigned, re-keyed or altered result does not."""

from __future__ import annotations

import orjson
import pytest

from agent_sre.functions.result import Result, Status, result_event
from agent_sre.schemas.cloudevent import trigger_headers
from agent_sre.schemas.signing import sign, verify
from agent_sre.settings import RESULT_TYPE
from agent_sre.worker.outcomes import parse_result
from agent_sre.worker.result_auth import refusal
from tests.functions_harness import trigger_for

KEY = b"shared-key"
TRIGGER = trigger_for("pod-restart", {"pod": "api-7f9", "namespace": "shop"})


def _published(result: Result, key: bytes | None = KEY) -> tuple[bytes, dict[str, str]]:
    return result_event(TRIGGER, result, dry_run=False, key=key)


def test_the_signature_covers_correlation_id_status_and_data():
    data = {"correlation_id": "c", "status": "failed", "message": "m"}
    signature = sign(KEY, "c", "failed", data)
    assert verify(KEY, "c", "failed", dict(reversed(list(data.items()))), signature)  # key order is no matter
    assert not verify(KEY, "c", "succeeded", data, signature)
    assert not verify(KEY, "d", "failed", data, signature)
    assert not verify(KEY, "c", "failed", {**data, "message": "n"}, signature)
    assert not verify(b"other", "c", "failed", data, signature)
    assert not verify(KEY, "c", "failed", data, None)


@pytest.mark.parametrize("status", list(Status))
def test_what_a_function_publishes_the_worker_takes(status):
    body, headers = _published(Result(status, "done", ["deleted pod shop/api-7f9"]))

    assert refusal(body, headers, "application/json", KEY, 1 << 20) is None
    parsed = parse_result(orjson.loads(body))
    assert (parsed.correlation_id, parsed.status) == (TRIGGER.correlation_id, status.value)
    assert headers["correlationid"] == TRIGGER.correlation_id and headers["type"] == RESULT_TYPE
    assert headers["traceparent"] == TRIGGER.trace["traceparent"]


def test_an_unsigned_result_is_refused():
    body, headers = _published(Result(Status.SUCCEEDED, "done"), key=None)
    assert refusal(body, headers, "application/json", KEY, 1 << 20)[0] == "unsigned_result"  # type: ignore[index]


def test_a_result_signed_with_another_key_or_altered_is_refused():
    body, headers = _published(Result(Status.SUCCEEDED, "done"), key=b"another")
    assert refusal(body, headers, "application/json", KEY, 1 << 20)[0] == "forged_result"  # type: ignore[index]

    body, headers = _published(Result(Status.SUCCEEDED, "done"))
    altered = body.replace(b'"succeeded"', b'"failed"')
    assert refusal(altered, headers, "application/json", KEY, 1 << 20)[0] == "forged_result"  # type: ignore[index]


def test_alerts_pass_untouched():
    headers = trigger_headers({"id": "1", "type": "io.homelab.prometheus.alert.fired", "source": "/x",
                               "datacontenttype": "application/json"})
    assert refusal(b'{"labels": {"alertname": "X"}}', headers, "application/json", KEY, 1 << 20) is None
