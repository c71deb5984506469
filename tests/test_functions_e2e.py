"""End to end over the real RabbitMQ: alert → worker → trigger → `agent-sre functions consume` (a
real process, the real CLI) → the Kubernetes API's recorded request → signed `lambda.result` → the
worker's outcome audit line, for every catalog function. And a forged result is refused.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import aio_pika
import orjson
import pytest
from pydantic import SecretStr

from agent_sre.schemas.cloudevent import trigger_headers
from agent_sre.schemas.signing import sign
from agent_sre.settings import RESULT_TYPE, Settings
from agent_sre.worker.deadletter import REASON
from tests.broker_harness import drain, wait_for
from tests.functions_scenarios import SCENARIOS
from tests.kube_api import FakeKube

KEY = "e2e-result-key"


def _alert(function: str, labels: dict[str, str]) -> dict:
    return {"labels": {"alertname": f"E2E{function.title().replace('-', '')}", **labels},
            "annotations": {"lambda_function": function, "summary": "end to end"},
            "startsAt": "2026-12-07T07:00:00Z"}


def _functions_process(settings: Settings, queue: str, kubeconfig: Path, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_SRE_") and k != "KUBECONFIG"}
    env.update(
        PYTHONPATH=str(Path(__file__).parent.parent),
        KUBECONFIG=str(kubeconfig),
        AGENT_SRE_AMQP_URL=settings.require_amqp_url(),
        AGENT_SRE_INPUT_EXCHANGE=settings.input_exchange,
        AGENT_SRE_OUTPUT_EXCHANGE=settings.output_exchange,
        AGENT_SRE_FUNCTIONS_QUEUE=queue,
        AGENT_SRE_RESULT_KEY=KEY,
        AGENT_SRE_FUNCTIONS_MAX_REPLICAS="5",
        AGENT_SRE_LOG_LEVEL="INFO",
        AGENT_SRE_HTTP_HOST="127.0.0.1",
        AGENT_SRE_HTTP_PORT="0",
    )
    with open(tmp_path / "functions.log", "wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-c", "from agent_sre.cli import main; main()", "functions", "consume"],
                                env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log)


async def _consuming(connection: aio_pika.abc.AbstractConnection, queue: str, process: subprocess.Popen[bytes],
                     log: Path) -> None:
    for _ in range(300):
        assert process.poll() is None, log.read_text()
        channel = await connection.channel()  # a passive declare of a missing queue closes its channel
        try:
            declared = await channel.declare_queue(queue, passive=True)
            if declared.declaration_result.consumer_count:
                return
        except aio_pika.exceptions.ChannelClosed:
            pass
        finally:
            if not channel.is_closed:
                await channel.close()
        await asyncio.sleep(0.1)
    pytest.fail(f"functions consume never consumed {queue}: {log.read_text()}")


async def test_every_function_end_to_end(start_worker, amqp_connection, tmp_path):
    fake = FakeKube()
    await fake.start()
    for scenario in SCENARIOS.values():
        scenario.seed(fake)
    harness = await start_worker(capture=False, result_key=SecretStr(KEY), rate_limit_burst=100_000,
                                 storm_per_minute=100_000, storm_per_message=100_000)
    queue = f"{harness.settings.output_exchange}.functions-{uuid.uuid4().hex[:6]}"
    process = _functions_process(harness.settings, queue, fake.kubeconfig(tmp_path / "kubeconfig"), tmp_path)
    try:
        await _consuming(amqp_connection, queue, process, tmp_path / "functions.log")
        channel = await amqp_connection.channel()
        # When one alert per function comes in
        for scenario in SCENARIOS.values():
            await harness.send(_alert(scenario.function, scenario.labels))

        # Then each ends in the worker's audit trail as the outcome of its own trigger (escalate's too)
        def results() -> dict[str, dict]:
            published = {r["correlation_id"]: r for r in harness.audit() if r.get("action") == "published"}
            return {published[r["correlation_id"]]["decision"]["lambda_function"]: r for r in harness.audit()
                    if r.get("action") in ("outcome", "result_unmatched") and "status" in r}

        try:
            await wait_for(lambda: len(results()) == len(SCENARIOS), 60)
        finally:
            print((tmp_path / "functions.log").read_text()[-4000:])
            for record in harness.audit():
                print({k: record.get(k) for k in ("action", "function", "outcome", "status", "reason", "error")})
        assert {name: r["status"] for name, r in results().items()} == {name: "succeeded" for name in SCENARIOS}
        assert {name: (r["action"], r["function"]) for name, r in results().items()} == {
            name: ("outcome", name) for name in SCENARIOS}
        # and the API saw exactly each function's writes
        seen = [(r.method, r.path, r.content_type) for r in fake.writes]
        assert sorted(seen) == sorted(w for s in SCENARIOS.values() for w in s.writes)

        # A result that is not signed with the key is refused: dead-lettered, never an outcome
        await _forged_result(channel, harness.settings)
        [dead] = await harness.dead_letters(1)
        assert dead.headers[REASON] == "forged_result"
        assert len(results()) == len(SCENARIOS)
    finally:
        await _stop(process, amqp_connection, queue, fake)


async def _stop(process, amqp_connection, queue: str, fake: FakeKube) -> None:
    """Stop `functions consume`, delete its queue and close the fake API."""
    process.terminate()
    process.wait(timeout=20)
    cleanup = await amqp_connection.channel()
    await cleanup.queue_delete(queue)
    await fake.close()


async def _forged_result(channel: aio_pika.abc.AbstractChannel, settings: Settings) -> None:
    data = {"correlation_id": "any", "status": "failed", "message": "forged"}
    headers = trigger_headers({"id": str(uuid.uuid4()), "type": RESULT_TYPE, "source": "/forger",
                               "datacontenttype": "application/json", "correlationid": "any",
                               "signature": sign(b"another key", "any", "failed", data)})
    exchange = await channel.get_exchange(settings.input_exchange)
    await exchange.publish(aio_pika.Message(orjson.dumps(data), headers=headers, content_type="application/json"),
                           routing_key="")


async def test_a_trigger_published_twice_acts_once_and_answers_once(broker_settings, amqp_connection, tmp_path):
    # Given `functions consume` on the broker, and a capture of what it publishes to the worker's input
    fake = FakeKube()
    await fake.start()
    SCENARIOS["pod-restart"].seed(fake)
    channel = await amqp_connection.channel()
    inputs = await channel.declare_exchange(broker_settings.input_exchange, aio_pika.ExchangeType.HEADERS, durable=True)
    capture = await channel.declare_queue(f"{broker_settings.input_queue}.capture-{uuid.uuid4().hex[:6]}", exclusive=True)
    await capture.bind(inputs, routing_key="")
    queue = f"{broker_settings.output_exchange}.functions-{uuid.uuid4().hex[:6]}"
    process = _functions_process(broker_settings, queue, fake.kubeconfig(tmp_path / "kubeconfig"), tmp_path)
    try:
        await _consuming(amqp_connection, queue, process, tmp_path / "functions.log")
        # When the same trigger arrives twice (a redelivery, a replay)
        trigger = _trigger_message()
        outputs = await channel.get_exchange(broker_settings.output_exchange)
        for _ in range(2):
            await outputs.publish(trigger, routing_key="")
        await wait_for(lambda: len(fake.writes) >= 1, 20)
        await asyncio.sleep(1.0)  # time for a second act or result, were there one
        # Then the pod was deleted once, and exactly one result came back, correlated and traced
        results = await drain(capture, 1, 10)
        assert await capture.get(fail=False) is None
        assert [r.method for r in fake.writes] == ["DELETE"]
        [result] = results
        assert result.headers["type"] == RESULT_TYPE
        assert result.headers["correlationid"] == trigger.headers["correlationid"]
        assert result.headers["traceparent"] == trigger.headers["traceparent"]
        assert orjson.loads(result.body)["status"] == "succeeded"
    finally:
        await _stop(process, amqp_connection, queue, fake)


def _trigger_message() -> aio_pika.Message:
    from agent_sre.schemas.decision import Decision
    from agent_sre.worker.publisher import build_trigger
    from tests.functions_harness import CATALOG, alert_for

    alert = alert_for(SCENARIOS["pod-restart"].labels)
    decision = Decision(lambda_function="pod-restart", parameters=CATALOG.resolve("pod-restart", alert), confidence=1)
    return build_trigger(alert, decision, trace={"traceparent": "00-" + "ef" * 16 + "-" + "01" * 8 + "-01"})
