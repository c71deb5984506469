"""`agent-sre functions serve`'s app: a Knative delivery in (binary or structured mode), the
result out as the reply; a redelivery answered with nothing, an unreadable body with 400."""

from __future__ import annotations

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent_sre.functions.http import create_app
from agent_sre.functions.service import Service
from agent_sre.schemas.signing import verify
from agent_sre.settings import RESULT_TYPE
from agent_sre.worker.publisher import build_trigger
from tests.functions_harness import CATALOG, alert_for, runner_for
from tests.functions_scenarios import SCENARIOS
from tests.kube_api import FakeKube

KEY = b"http-key"


@pytest.fixture
async def client(tmp_path):
    fake = FakeKube()
    await fake.start()
    SCENARIOS["pod-restart"].seed(fake)
    runner = await runner_for(fake, tmp_path)
    async with TestClient(TestServer(create_app(Service(runner, KEY)))) as test_client:
        test_client.fake = fake  # type: ignore[attr-defined]
        yield test_client
    await fake.close()


def _binary_mode() -> tuple[bytes, dict[str, str]]:
    """The trigger as Knative's dispatcher POSTs it: `ce-` headers, the data as the body."""
    alert = alert_for(SCENARIOS["pod-restart"].labels)
    from agent_sre.schemas.decision import Decision

    decision = Decision(lambda_function="pod-restart", parameters=CATALOG.resolve("pod-restart", alert), confidence=1)
    message = build_trigger(alert, decision, trace={"traceparent": "00-" + "12" * 16 + "-" + "34" * 8 + "-01"})
    headers = {("traceparent" if k == "traceparent" else f"ce-{k}"): str(v) for k, v in message.headers.items()
               if k != "content-type"}
    return message.body, {**headers, "Content-Type": "application/json"}


async def test_a_trigger_is_answered_with_its_signed_result(client):
    body, headers = _binary_mode()

    response = await client.post("/", data=body, headers=headers)

    assert response.status == 200
    data = orjson.loads(await response.read())
    assert response.headers["ce-type"] == RESULT_TYPE
    assert response.headers["ce-correlationid"] == data["correlation_id"] == headers["ce-correlationid"]
    assert response.headers["traceparent"] == headers["traceparent"]
    assert data["status"] == "succeeded" and data["function"] == "pod-restart"
    assert verify(KEY, data["correlation_id"], data["status"], data, response.headers["ce-signature"])
    assert [r.method for r in client.fake.writes] == ["DELETE"]


async def test_a_redelivery_is_answered_with_nothing_and_acts_not(client):
    body, headers = _binary_mode()
    await client.post("/", data=body, headers=headers)

    again = await client.post("/", data=body, headers=headers)

    assert again.status == 202 and await again.read() == b""
    assert [r.method for r in client.fake.writes] == ["DELETE"]


async def test_structured_mode_is_taken_too(client):
    body, headers = _binary_mode()
    event = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
    event["data"] = orjson.loads(body)

    response = await client.post("/", data=orjson.dumps(event),
                                 headers={"Content-Type": "application/cloudevents+json"})

    assert response.status == 200 and (await response.json())["status"] == "succeeded"


@pytest.mark.parametrize("body", [b"not json", b'{"lambda_function": "pod-restart"}'])
async def test_a_body_that_is_no_trigger_is_a_400(client, body):
    _, headers = _binary_mode()
    response = await client.post("/", data=body, headers=headers)
    assert response.status == 400
    assert client.fake.requests == []


async def test_health_and_metrics(client):
    body, headers = _binary_mode()
    await client.post("/", data=body, headers=headers)
    assert (await client.get("/healthz")).status == 200
    metrics = await (await client.get("/metrics")).text()
    assert 'agent_sre_function_runs_total{function="pod-restart",status="succeeded"} 1.0' in metrics
    assert "agent_sre_function_run_duration_seconds_bucket" in metrics


async def test_with_a_token_a_trigger_without_it_is_refused_and_acts_not(tmp_path):
    # Given `functions serve` with AGENT_SRE_FUNCTIONS_HTTP_TOKEN set
    fake = FakeKube()
    await fake.start()
    SCENARIOS["pod-restart"].seed(fake)
    runner = await runner_for(fake, tmp_path, functions_http_token="s3cret-token")
    body, headers = _binary_mode()
    try:
        async with TestClient(TestServer(create_app(Service(runner, KEY)))) as client:
            # When a trigger comes without the token, or with another one
            for authorization in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-token"}):
                refused = await client.post("/", data=body, headers={**headers, **authorization})
                # Then it is refused with 401, and nothing is called in the cluster
                assert refused.status == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
                assert (await refused.json())["error"] == "unauthorized"
            assert fake.requests == []
            assert runner.metrics.invalid.labels("unauthorized")._value.get() == 3
            # while the probes stay open, and the token lets the trigger in
            assert (await client.get("/healthz")).status == 200
            taken = await client.post("/", data=body, headers={**headers, "Authorization": "Bearer s3cret-token"})
            assert taken.status == 200 and [r.method for r in fake.writes] == ["DELETE"]
    finally:
        await fake.close()
