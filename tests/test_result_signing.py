"""Results signed by a function (AGENT_SRE_RESULT_KEY) and checked by the worker: what the function
publishes passes, an unsigned, re-keyed or altered result does not."""

from __future__ import annotations

import orjson
import pytest
from pydantic import SecretStr

from agent_sre.functions.result import Result, Status, result_event
from agent_sre.schemas.cloudevent import trigger_headers
from agent_sre.schemas.signing import sign, verify
from agent_sre.settings import RESULT_TYPE
from agent_sre.worker.approvals import APPROVAL_GRANTED_TYPE
from agent_sre.worker.outcomes import parse_result
from agent_sre.worker.publisher import approval_answer
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
    assert refusal(body, headers, "application/json", KEY, 1 << 20).reason == "unsigned_result"  # type: ignore[union-attr]


def test_a_result_signed_with_another_key_or_altered_is_refused():
    body, headers = _published(Result(Status.SUCCEEDED, "done"), key=b"another")
    assert refusal(body, headers, "application/json", KEY, 1 << 20).reason == "forged_result"  # type: ignore[union-attr]

    body, headers = _published(Result(Status.SUCCEEDED, "done"))
    altered = body.replace(b'"succeeded"', b'"failed"')
    assert refusal(altered, headers, "application/json", KEY, 1 << 20).reason == "forged_result"  # type: ignore[union-attr]


def test_alerts_pass_untouched():
    headers = trigger_headers({"id": "1", "type": "io.homelab.prometheus.alert.fired", "source": "/x",
                               "datacontenttype": "application/json"})
    assert refusal(b'{"labels": {"alertname": "X"}}', headers, "application/json", KEY, 1 << 20) is None


@pytest.mark.parametrize("approved", [True, False])
def test_an_approval_answer_signed_by_the_worker_or_the_cli_passes(approved):
    body, headers = approval_answer("occurrence-1", approved, "alice", KEY)
    assert refusal(body, headers, "application/json", KEY, 1 << 20) is None


def test_an_unsigned_or_altered_approval_is_refused():
    body, headers = approval_answer("occurrence-1", True, "mallory")
    assert refusal(body, headers, "application/json", KEY, 1 << 20).reason == "unsigned_answer"  # type: ignore[union-attr]

    body, headers = approval_answer("occurrence-1", False, "alice", KEY)  # a denial, turned into a grant
    granted = {**headers, "type": APPROVAL_GRANTED_TYPE}
    assert refusal(body, granted, "application/json", KEY, 1 << 20).reason == "forged_answer"  # type: ignore[union-attr]


async def test_the_worker_dead_letters_an_unsigned_approval_over_the_broker(start_worker):
    import aio_pika

    from agent_sre.worker.deadletter import REASON

    harness = await start_worker(capture=False, result_key=SecretStr(KEY.decode()))
    body, headers = approval_answer("occurrence-1", True, "mallory")
    exchange = await harness.channel.get_exchange(harness.settings.input_exchange)
    await exchange.publish(aio_pika.Message(body, headers=headers, content_type="application/json"), routing_key="")

    [dead] = await harness.dead_letters(1)

    assert dead.headers[REASON] == "unsigned_answer"
