"""The worker in-process against the real RabbitMQ: alert events in, triggers and dead letters out."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import orjson
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from agent_sre.cli import app
from agent_sre.cli.send import Encoding
from agent_sre.schemas.alert import Alert
from agent_sre.selectors.gates import Gates
from agent_sre.settings import DEFAULT_EVENT_TYPE, DEFAULT_SELECTORS, RESULT_TYPE
from agent_sre.worker.deadletter import ATTEMPTS, LAST_ERROR, REASON
from agent_sre.worker.publisher import PROPOSED_TYPE, TRIGGER_SOURCE, TRIGGER_TYPE
from agent_sre.worker.topology import delay_queue_name, retry_delays
from tests.broker_harness import crash_loop, wait_for

pytestmark = pytest.mark.broker


@pytest.mark.parametrize("encoding", list(Encoding))
async def test_every_input_encoding_gives_one_bare_header_trigger(start_worker, encoding: Encoding) -> None:
    harness = await start_worker()
    await harness.send(crash_loop(), encoding=encoding)

    [trigger] = await harness.triggers(1)
    data = orjson.loads(trigger.body)
    assert data["lambda_function"] == "pod-restart"
    assert data["parameters"] == {"name": "api-7f9", "namespace": "shop"}
    assert data["triggered_by"] == "static" and data["confidence"] == 1.0
    assert data["alert"]["labels"]["pod"] == "api-7f9"
    headers = trigger.headers
    assert headers["type"] == TRIGGER_TYPE and headers["source"] == TRIGGER_SOURCE
    assert headers["specversion"] == "1.0" and headers["subject"] == "pod-restart"
    assert headers["id"] == trigger.message_id
    assert headers["correlationid"] == data["correlation_id"]
    assert trigger.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert trigger.content_type == "application/json"
    assert harness.sample("agent_sre_events_total", type=DEFAULT_EVENT_TYPE, outcome="processed") == 1


async def test_shadow_mode_publishes_one_proposal_that_no_functions_filter_takes(start_worker) -> None:
    harness = await start_worker(mode="shadow")
    # What a function's Knative Trigger filters on: the trigger type and its own name as subject
    output = await harness.channel.get_exchange(harness.settings.output_exchange)
    function_queue = await harness.channel.declare_queue(exclusive=True)
    await function_queue.bind(output, arguments={"x-match": "all", "type": TRIGGER_TYPE, "subject": "pod-restart"})
    await harness.send(crash_loop())

    [proposal] = await harness.triggers(1)
    assert proposal.headers["type"] == PROPOSED_TYPE and proposal.headers["subject"] == "pod-restart"
    assert proposal.headers["specversion"] == "1.0" and proposal.headers["source"] == TRIGGER_SOURCE
    data = orjson.loads(proposal.body)
    assert data["lambda_function"] == "pod-restart" and data["parameters"] == {"name": "api-7f9", "namespace": "shop"}
    assert proposal.headers["correlationid"] == data["correlation_id"]
    assert await function_queue.get(no_ack=True, fail=False) is None, "a proposal must never reach a function"
    [record] = harness.audit()
    assert record["action"] == "proposed" and record["trigger_id"] == proposal.message_id
    assert harness.sample("agent_sre_proposals_published_total", function="pod-restart") == 1
    assert harness.sample("agent_sre_triggers_published_total", function="pod-restart") == 0


async def test_a_proposal_nothing_is_bound_for_is_not_dead_lettered(start_worker) -> None:
    harness = await start_worker(capture=False, mode="shadow")
    await harness.send(crash_loop())
    await harness.settled(1)
    await harness.dead_letters(0)
    [record] = harness.audit()
    assert record["action"] == "proposed"


@pytest.mark.parametrize("state", ["memory", "redis"])
async def test_a_functions_result_and_the_resolution_are_linked_to_the_trigger(
    start_worker, state: str, redis_url: str, redis_prefix: str
) -> None:
    shared = {"redis_url": SecretStr(redis_url), "redis_prefix": redis_prefix} if state == "redis" else {}
    harness = await start_worker(**shared)
    backend = type(harness.worker.consumer.pipeline.outcomes).__name__  # type: ignore[union-attr]
    assert backend == {"memory": "MemoryOutcomes", "redis": "RedisOutcomes"}[state]
    await harness.send(crash_loop())
    [trigger] = await harness.triggers(1)
    await harness.send({"correlation_id": trigger.headers["correlationid"], "status": "succeeded"}, event_type=RESULT_TYPE)
    await harness.settled(2)
    await harness.send({**crash_loop(), "status": "resolved"})  # the same fingerprint and startsAt
    await harness.settled(3)
    outcomes = {r["outcome"]: r for r in harness.audit() if r["action"] == "outcome"}
    assert outcomes.keys() == {"succeeded", "resolved"}
    assert outcomes["resolved"]["trigger_id"] == outcomes["succeeded"]["trigger_id"] == trigger.message_id
    assert harness.sample("agent_sre_remediation_outcomes_total", function="pod-restart", outcome="resolved") == 1
    assert harness.sample("agent_sre_remediation_outcomes_total", function="pod-restart", outcome="succeeded") == 1
    # A result that comes after the resolution finds no trigger awaiting it, and is kept as such
    await harness.send({"correlation_id": trigger.headers["correlationid"], "status": "failed"}, event_type=RESULT_TYPE)
    await harness.settled(4)
    assert harness.audit()[-1]["action"] == "result_unmatched"
    await harness.dead_letters(0)


async def test_a_resolved_remediation_is_a_fewshot_neighbour_in_the_next_select(start_worker, tmp_path) -> None:
    harness = await start_worker()
    # An alert name no example resembles, so that only the audit can teach it
    backup = {"labels": {"alertname": "ZorbQuuxGlimmer", "job_name": "zq-1", "namespace": "shop"},
              "annotations": {"lambda_function": "job-retry"}, "startsAt": "2026-11-21T10:00:00Z"}
    await harness.send(backup)
    await harness.triggers(1)

    def select() -> dict[str, Any]:
        alert = {"labels": {"alertname": "ZorbQuuxGlimmer", "job_name": "zq-2", "namespace": "shop"}}
        env = {"AGENT_SRE_AUDIT_LOG": str(harness.audit_path), "AGENT_SRE_FEWSHOT_K": "1",
               "AGENT_SRE_RETRIEVAL_CACHE_DIR": str(tmp_path / "cache")}
        result = CliRunner().invoke(app, ["select", "--selectors", "fewshot", orjson.dumps(alert).decode()], env=env)
        assert result.exit_code == 0, result.output
        [phase] = orjson.loads(result.output.strip().splitlines()[-1])["phases"]
        return phase

    before = await asyncio.to_thread(select)
    assert before["outcome"] != "decided", "published, but not yet seen to work: no example"
    await harness.send({**backup, "status": "resolved"})
    await harness.settled(2)
    after = await asyncio.to_thread(select)
    assert after["lambda_function"] == "job-retry" and after["confidence"] > before["confidence"] + 0.2


async def test_a_webhook_fans_out_to_one_trigger_per_firing_alert(start_worker) -> None:
    harness = await start_worker()
    resolved = {**crash_loop("db-0"), "status": "resolved"}
    webhook = {"version": "4", "status": "firing", "alerts": [crash_loop(f"api-{n}") for n in range(3)] + [resolved]}
    await harness.send(webhook)

    triggers = await harness.triggers(3)
    assert sorted(orjson.loads(t.body)["parameters"]["name"] for t in triggers) == ["api-0", "api-1", "api-2"]
    assert len({t.headers["correlationid"] for t in triggers}) == 3
    actions = sorted(record["action"] for record in harness.audit())
    assert actions == ["published", "published", "published", "resolved"]


@pytest.mark.parametrize(
    ("reason", "body", "event_type"),
    [
        ("invalid_json", b"{not json", DEFAULT_EVENT_TYPE),
        ("missing_alertname", orjson.dumps({"labels": {"pod": "api"}}), DEFAULT_EVENT_TYPE),
        ("invalid_alert", orjson.dumps({"labels": {"alertname": "X", "replicas": 3}}), DEFAULT_EVENT_TYPE),
        ("too_large", orjson.dumps({**crash_loop(), "padding": "x" * 2000}), DEFAULT_EVENT_TYPE),
        ("unsupported_type", orjson.dumps(crash_loop()), "com.example.other"),
    ],
)
async def test_bad_input_is_dead_lettered_with_its_reason_and_the_consumer_goes_on(
    start_worker, reason: str, body: bytes, event_type: str
) -> None:
    harness = await start_worker(max_event_bytes=1024)
    sent = await harness.send(body=body, event_type=event_type)

    [dead] = await harness.dead_letters(1)
    assert dead.headers[REASON] == reason
    assert dead.body == body, "the original body is kept"
    assert dead.headers["type"] == event_type and dead.headers["id"] == sent.message_id, "original headers kept"
    assert dead.message_id == sent.message_id
    assert harness.sample("agent_sre_dead_letters_total", reason=reason) == 1

    await harness.send(crash_loop())
    [trigger] = await harness.triggers(1)
    assert orjson.loads(trigger.body)["lambda_function"] == "pod-restart"


async def test_an_alert_no_selector_decides_on_escalates_with_what_the_selectors_thought(start_worker) -> None:
    # Given the default (AGENT_SRE_UNDECIDED=escalate) and a webhook with an alert nothing decides,
    # of which the rules have a below-threshold guess
    harness = await start_worker()
    mystery = {"labels": {"alertname": "MysteryThing", "namespace": "shop"}}
    webhook = {"version": "4", "alerts": [crash_loop(), mystery]}
    await harness.send(webhook)

    # Then both alerts get a trigger, the mystery one an escalation that says why; nothing is dead-lettered
    triggers = [orjson.loads(t.body) for t in await harness.triggers(2)]
    await harness.settled(1)
    [escalation] = [t for t in triggers if t["alert"]["labels"]["alertname"] == "MysteryThing"]
    assert (escalation["lambda_function"], escalation["escalation"]) == ("escalate", "undecided")
    assert "no selector was confident" in escalation["reasoning"]
    assert isinstance(escalation["suggestions"], list)
    assert await harness.dead_letters(0) == []
    assert harness.sample("agent_sre_chain_escalations_total", reason="undecided") == 1
    [record] = [r for r in harness.audit() if r["alertname"] == "MysteryThing"]
    assert record["action"] == "published" and record["decision"]["escalation"] == "undecided"


async def test_an_alert_no_selector_decides_on_is_dead_lettered_when_so_configured(start_worker) -> None:
    harness = await start_worker(undecided="dead-letter")
    mystery = {"labels": {"alertname": "MysteryThing", "namespace": "shop"}}
    webhook = {"version": "4", "alerts": [crash_loop(), mystery]}
    await harness.send(webhook)

    await harness.triggers(1)  # the decided alert is still triggered
    [dead] = await harness.dead_letters(1)
    assert dead.headers[REASON] == "no_decision"
    assert "MysteryThing" in dead.headers["x-agent-sre-alertnames"]
    [record] = [r for r in harness.audit() if r["action"] == "no_decision"]
    assert [phase["outcome"] for phase in record["decision"]["phases"]] == ["abstained", "abstained"]


def _raising_on(alertname: str, original):
    """`original`, except that it raises for the one alert named `alertname` (as issue 20's alert did)."""

    def wrapped(*args, **kwargs):
        alert = next(a for a in [*args, *kwargs.values()] if isinstance(a, Alert))
        if alert.alertname == alertname:
            raise ValueError("min() arg is an empty sequence")
        return original(*args, **kwargs)

    return wrapped


def _bad_apple_webhook() -> tuple[dict[str, Any], str]:
    """Three crash loops in one webhook; the middle one is named `BadApple`. Returns its correlation id."""
    bad = crash_loop("api-1")
    bad["labels"]["alertname"] = "BadApple"
    webhook = {"version": "4", "status": "firing", "alerts": [crash_loop("api-0"), bad, crash_loop("api-2")]}
    return webhook, Alert.model_validate(bad).correlation_id


async def test_an_alert_whose_decision_raises_escalates_alone(start_worker, monkeypatch) -> None:
    # Given a webhook of three alerts, and a chain that raises while deciding the middle one
    monkeypatch.setattr(Gates, "ignore_reason", _raising_on("BadApple", Gates.ignore_reason))
    harness = await start_worker()
    webhook, bad_id = _bad_apple_webhook()

    # When the worker takes the webhook
    await harness.send(webhook)
    triggers = [orjson.loads(t.body) for t in await harness.triggers(3)]
    await harness.settled(1)

    # Then the other two are restarted as usual, the bad one alone is escalated with its reason,
    # and the message is acked: nothing is dead-lettered
    by_id = {t["correlation_id"]: t for t in triggers}
    assert len(by_id) == 3
    assert by_id[bad_id]["lambda_function"] == "escalate"
    assert by_id[bad_id]["triggered_by"] == "error"
    assert "ValueError: min() arg is an empty sequence" in by_id[bad_id]["reasoning"]
    assert sorted(t["parameters"].get("name", "") for i, t in by_id.items() if i != bad_id) == ["api-0", "api-2"]
    assert await harness.dead_letters(0) == []
    assert sorted(r["action"] for r in harness.audit()) == ["published"] * 3
    assert harness.sample("agent_sre_events_total", type=DEFAULT_EVENT_TYPE, outcome="processed") == 1


async def test_an_alert_whose_handling_raises_is_dead_lettered_alone_with_its_reason(start_worker, monkeypatch) -> None:
    # Given a webhook of three alerts, and a publisher that raises on the middle one's trigger
    harness = await start_worker()
    publisher = harness.worker.consumer.pipeline.publisher
    monkeypatch.setattr(publisher, "trigger", _raising_on("BadApple", publisher.trigger))
    webhook, bad_id = _bad_apple_webhook()

    # When the worker takes the webhook
    await harness.send(webhook)

    # Then the other two get their triggers, and the message is dead-lettered naming the bad alert
    triggers = [orjson.loads(t.body) for t in await harness.triggers(2)]
    assert sorted(t["parameters"]["name"] for t in triggers) == ["api-0", "api-2"]
    assert bad_id not in {t["correlation_id"] for t in triggers}
    [dead] = await harness.dead_letters(1)
    assert dead.headers[REASON] == "alert_error"
    assert "BadApple: ValueError: min() arg is an empty sequence" in dead.headers[LAST_ERROR]
    assert harness.sample("agent_sre_dead_letters_total", reason="alert_error") == 1
    records = {r["correlation_id"]: r for r in harness.audit()}
    assert records[bad_id]["action"] == "alert_error"
    assert records[bad_id]["message"] == "dead_lettered" and records[bad_id]["dead_letter_reason"] == "alert_error"
    assert sorted(r["action"] for i, r in records.items() if i != bad_id) == ["published", "published"]


async def test_alerts_that_need_nobody_are_acked_audited_and_counted_never_escalated(start_worker) -> None:
    # Given Watchdog (always firing by design) and a Flux success event, in one webhook with a real alert
    harness = await start_worker()
    watchdog = {"labels": {"alertname": "Watchdog", "severity": "none"}}
    succeeded = {"labels": {"alertname": "FluxKustomizationReconciliationsucceeded", "severity": "info",
                            "name": "apps", "namespace": "flux-system", "kind": "Kustomization"}}
    await harness.send({"version": "4", "alerts": [watchdog, succeeded, crash_loop()]})

    [trigger] = await harness.triggers(1)
    await harness.settled(1)
    assert orjson.loads(trigger.body)["lambda_function"] == "pod-restart"
    assert harness.sample("agent_sre_ignored_total") == 2
    assert harness.sample("agent_sre_dead_letters_total", reason="no_decision") == 0
    assert await harness.dead_letters(0) == []
    ignored = [r for r in harness.audit() if r["action"] == "ignored"]
    assert [r["alertname"] for r in ignored] == ["Watchdog", "FluxKustomizationReconciliationsucceeded"]
    assert all(r["decision"]["ignored"] and r["decision"]["lambda_function"] is None for r in ignored)


async def test_a_publish_that_keeps_failing_is_retried_through_the_delay_queues_then_dead_lettered(
    start_worker,
) -> None:
    # Nothing is bound to the output exchange and publishes are mandatory: every trigger comes back.
    harness = await start_worker(capture=False)
    settings = harness.settings
    await harness.send(crash_loop())

    [dead] = await harness.dead_letters(1, timeout_s=15)
    assert dead.headers[REASON] == "retries_exhausted"
    assert dead.headers[ATTEMPTS] == settings.retry_max_attempts == 3
    assert "unroutable" in dead.headers["x-agent-sre-last-error"]
    # Each retry expired out of its own delay queue, which RabbitMQ records in x-death.
    expected = {delay_queue_name(settings.input_queue, d) for d in retry_delays(settings)}
    assert {death["queue"] for death in dead.headers["x-death"]} == expected
    assert harness.sample("agent_sre_retries_total", reason="publish_failed") == 2
    assert harness.sample("agent_sre_triggers_published_total", function="pod-restart") == 0
    actions = [r["action"] for r in harness.audit()]
    assert actions == ["retry"] * 3, "no retry was suppressed by its own earlier attempt"


async def test_the_rate_limit_suppresses_triggers_beyond_the_burst(start_worker) -> None:
    harness = await start_worker(rate_limit_burst=2, rate_limit_per_minute=0.01)
    for n in range(4):
        await harness.send(crash_loop(f"api-{n}"))
    await harness.send(crash_loop("api-9", namespace="other"))

    triggers = await harness.triggers(3)
    assert sorted(orjson.loads(t.body)["parameters"]["name"] for t in triggers) == ["api-0", "api-1", "api-9"]
    assert harness.sample("agent_sre_suppressions_total", reason="rate_limit") == 2
    assert [r["action"] for r in harness.audit()].count("suppressed:rate_limit") == 2
    await harness.dead_letters(0)


async def test_the_cooldown_suppresses_a_repeat_of_the_same_alert(start_worker) -> None:
    harness = await start_worker()
    await harness.send(crash_loop())
    await harness.send(crash_loop())  # Alertmanager's repeat: a new event id, the same alert

    await harness.triggers(1)
    await harness.settled(2)
    assert harness.sample("agent_sre_suppressions_total", reason="cooldown") == 1
    assert sorted(r["action"] for r in harness.audit()) == ["published", "suppressed:cooldown"]
    await harness.dead_letters(0)


async def test_a_repeat_in_its_cooldown_costs_no_selector_time(start_worker) -> None:
    # Given an alert that triggered
    harness = await start_worker()
    await harness.send(crash_loop())
    await harness.triggers(1)

    # When it comes again and again (a storm of Alertmanager repeats)
    for _ in range(19):
        await harness.send(crash_loop())
    await harness.settled(20)

    # Then every repeat is suppressed before the chain: the selectors decided once
    await harness.triggers(0)
    assert harness.sample("agent_sre_decisions_total", selector="static", function="pod-restart") == 1
    assert harness.sample("agent_sre_suppressions_total", reason="cooldown") == 19


async def test_a_redelivered_event_id_never_publishes_twice(start_worker) -> None:
    harness = await start_worker(cooldown_s=0)
    event_id = str(uuid.uuid4())
    await harness.send(crash_loop(), event_id=event_id)
    await harness.send(crash_loop(), event_id=event_id)

    await harness.triggers(1)
    await harness.settled(2)
    assert sorted(r["action"] for r in harness.audit()) == ["duplicate", "published"]
    await harness.dead_letters(0)


async def test_a_worker_stopped_as_its_last_message_settles_leaves_nothing_to_redeliver(start_worker) -> None:
    # The consumer queues its acks without waiting for the socket: stop must flush them first
    harness = await start_worker(rate_limit_burst=1000, storm_per_minute=1000, concurrency=32)
    for n in range(300):
        await harness.send(crash_loop(f"api-{n}"))
    await harness.settled(300, timeout_s=30)
    await harness.worker.stop(grace_s=5)

    queue = await harness.channel.declare_queue(harness.settings.input_queue, passive=True)
    assert queue.declaration_result.message_count == 0
    assert len(await harness.triggers(300)) == 300


async def test_the_worker_reconnects_after_losing_its_connection(start_worker) -> None:
    harness = await start_worker()
    await harness.send(crash_loop("api-1"))
    await harness.triggers(1)

    # When the connection drops under the worker (as a network failure would)
    connection = harness.worker.connection
    assert connection is not None and connection.transport is not None
    await connection.transport.connection.close(ConnectionError("simulated network failure"))
    await wait_for(lambda: not harness.worker.ready, 5)

    # Then it reconnects by itself, is ready again and goes on consuming
    await wait_for(lambda: harness.worker.ready, 15)
    await harness.send(crash_loop("api-2"))
    [trigger] = await harness.triggers(1)
    assert orjson.loads(trigger.body)["parameters"]["name"] == "api-2"


async def test_no_alert_is_lost_when_the_connection_drops_while_confirms_are_pending(start_worker) -> None:
    # Given a worker in the middle of a stream of alerts, each a different pod
    harness = await start_worker(rate_limit_burst=10_000, rate_limit_per_minute=10_000, storm_per_minute=10_000,
                                 concurrency=32)
    pods = {f"api-{n}" for n in range(1500)}
    for pod in sorted(pods):
        await harness.send(crash_loop(pod))

    # When its connection drops twice while publishes wait for their confirms
    for share in (0.2, 0.5):
        await wait_for(lambda: harness.sample("agent_sre_triggers_published_total", function="pod-restart")
                       >= share * len(pods), 30)
        connection = harness.worker.connection
        assert connection is not None
        await wait_for(lambda: connection.transport is not None, 15)
        await connection.transport.connection.close(ConnectionError("simulated network failure"))
        await wait_for(lambda: not harness.worker.ready, 5)
        await wait_for(lambda: harness.worker.ready, 15)

    # Then every alert gets its trigger (a redelivered one may trigger twice, with the same id):
    # a publish cut off by the connection released its cooldown, so nothing is suppressed and lost
    assert harness.capture is not None
    seen: dict[str, set[str]] = {}
    deadline = asyncio.get_running_loop().time() + 60
    while set(seen) < pods:
        message = await harness.capture.get(no_ack=True, fail=False)
        if message is None:
            missing = sorted(pods - set(seen))[:5]
            assert asyncio.get_running_loop().time() < deadline, f"{len(pods - set(seen))} lost, e.g. {missing}"
            await asyncio.sleep(0.05)
            continue
        seen.setdefault(orjson.loads(message.body)["parameters"]["name"], set()).add(message.message_id or "")
    assert all(len(ids) == 1 for ids in seen.values())  # a repeat is the same trigger, for downstream dedup
    assert not [r for r in harness.audit() if r["action"].startswith("suppressed")]


async def test_agent_sre_send_publishes_an_alert_the_worker_triggers_on(start_worker) -> None:
    harness = await start_worker()
    settings = harness.settings
    env = {
        "AGENT_SRE_AMQP_URL": settings.require_amqp_url(),
        "AGENT_SRE_INPUT_EXCHANGE": settings.input_exchange,
        "AGENT_SRE_INPUT_QUEUE": settings.input_queue,
        "AGENT_SRE_RETRY_MAX_ATTEMPTS": str(settings.retry_max_attempts),
        "AGENT_SRE_RETRY_BASE_DELAY_S": str(settings.retry_base_delay_s),
        "AGENT_SRE_RETRY_MAX_DELAY_S": str(settings.retry_max_delay_s),
    }
    base = ["send", "KubePodCrashLooping", "-l", "pod=api-3", "-l", "namespace=shop", "-a", "lambda_function=pod-restart"]

    def invoke(*extra: str) -> Any:
        # The command runs its own event loop, so it gets a thread of its own.
        return CliRunner().invoke(app, [*base, *extra], env=env)

    sent = await asyncio.to_thread(invoke, "--encoding", "structured")
    assert sent.exit_code == 0, sent.output
    [trigger] = await harness.triggers(1)
    assert orjson.loads(trigger.body)["parameters"] == {"name": "api-3", "namespace": "shop"}

    resolved = await asyncio.to_thread(invoke, "--resolved")
    assert resolved.exit_code == 0, resolved.output
    await harness.settled(2)
    assert [r["action"] for r in harness.audit()] == ["published", "outcome", "resolved"]
    assert harness.audit()[1]["outcome"] == "resolved" and harness.audit()[1]["trigger_id"] == trigger.message_id

    malformed = await asyncio.to_thread(invoke, "--label", "no-equals-sign")
    assert malformed.exit_code == 2 and "key=value" in malformed.output


async def test_the_workers_http_ingress_feeds_the_same_pipeline(start_worker) -> None:
    harness = await start_worker(http_host="127.0.0.1")
    base = f"http://127.0.0.1:{harness.worker.http_port}"
    webhook = {"version": "4", "status": "firing", "alerts": [crash_loop("api-5")]}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/readyz") as ready:
            assert ready.status == 200
        async with session.post(f"{base}/alertmanager", json=webhook) as accepted:
            assert accepted.status == 202
        async with session.post(f"{base}/alertmanager", data=b"{oops", headers={"Content-Type": "application/json"}) as refused:
            assert refused.status == 400

    [trigger] = await harness.triggers(1)
    assert orjson.loads(trigger.body)["parameters"]["name"] == "api-5"
    [dead] = await harness.dead_letters(1)
    assert dead.headers[REASON] == "invalid_json" and dead.body == b"{oops"


async def test_the_default_chain_decides_with_its_model_selectors(start_worker, tmp_path: Path) -> None:
    # The chain `agent-sre run` starts by default, models and all; PodCPUHigh's answer depends on
    # the request-rate trend, which only the summary tells.
    harness = await start_worker(selectors=DEFAULT_SELECTORS, retrieval_cache_dir=tmp_path / "cache")
    labels = {"alertname": "PodCPUHigh", "pod": "shop-api-7d9f8b6c4-x2x7q", "namespace": "shop"}
    rising = {"labels": labels, "annotations": {"summary": "CPU at 93%, traffic is rising"}}
    await harness.send(rising)

    [trigger] = await harness.triggers(1, timeout_s=60)
    data = orjson.loads(trigger.body)
    assert data["lambda_function"] == "scale-pod" and data["triggered_by"] == "rag"
    assert data["parameters"] == {"name": labels["pod"], "namespace": "shop"}
    [record] = harness.audit()
    # scale-pod is a medium-risk function: rag proposes it, and a selector of another kind must agree.
    phases = record["decision"]["phases"]
    assert [(p["selector"], p["outcome"]) for p in phases[:3]] == [
        ("static", "abstained"), ("known", "abstained"), ("rag", "unconfirmed")]
    assert (phases[-1]["selector"], phases[-1]["outcome"], phases[-1]["lambda_function"]) == ("trm", "decided", "scale-pod")
