"""Pipeline and Consumer with fake collaborators (chain, publisher, message): what each verdict
leads to, without a broker. tests/test_worker_broker.py runs the same code against RabbitMQ."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from agent_sre.cli.send import Encoding, encode_event
from agent_sre.errors import ConfigError, TransientError
from agent_sre.schemas.alert import Alert
from agent_sre.schemas.audit import AuditRecord
from agent_sre.schemas.catalog import Catalog, load_catalog
from agent_sre.schemas.decision import Decision
from agent_sre.settings import DEFAULT_EVENT_TYPE, RESULT_TYPE, Settings
from agent_sre.worker.audit import AuditLog
from agent_sre.worker.consumer import Consumer
from agent_sre.worker.pipeline import Pipeline
from agent_sre.worker.deadletter import ATTEMPTS
from agent_sre.worker.limits import LimitSettings, MemoryLimits, Refusal
from agent_sre.worker.metrics import Metrics
from agent_sre.worker.outcomes import MemoryOutcomes
from agent_sre.worker.publisher import Kind


@dataclass
class FakeMessage:
    """What the pipeline and the consumer read of an AMQP delivery, and how it was settled."""

    body: bytes
    headers: dict[str, Any]
    content_type: str | None = "application/json"
    message_id: str | None = None
    delivery_tag: int = 1
    settled: list[str] = field(default_factory=list)

    @property
    def channel(self) -> FakeMessage:  # the consumer acks through the delivery's channel
        return self

    async def basic_ack(self, delivery_tag: int, wait: bool = True) -> None:
        assert delivery_tag == self.delivery_tag
        self.settled.append("ack")

    async def nack(self, requeue: bool = True) -> None:
        self.settled.append("nack")


def message(*alerts: dict[str, Any], event_id: str | None = None, headers: dict[str, Any] | None = None) -> FakeMessage:
    data: dict[str, Any] = {"version": "4", "status": "firing", "alerts": list(alerts)}
    encoded = encode_event(data, event_type=DEFAULT_EVENT_TYPE, encoding=Encoding.knative, event_id=event_id)
    return FakeMessage(encoded.body, {**(encoded.headers or {}), **(headers or {})}, message_id=encoded.message_id)


def result(correlation_id: str, status: str, **extra: Any) -> FakeMessage:
    encoded = encode_event({"correlation_id": correlation_id, "status": status, **extra}, event_type=RESULT_TYPE,
                           encoding=Encoding.knative)
    return FakeMessage(encoded.body, dict(encoded.headers or {}), message_id=encoded.message_id)


def crash_loop(pod: str, alertname: str = "KubePodCrashLooping") -> dict[str, Any]:
    return {"status": "firing", "labels": {"alertname": alertname, "pod": pod, "namespace": "shop"},
            "startsAt": "2026-11-21T10:00:00Z"}


class FakeChain:
    """Restarts every pod, except that an alert named in `hold` waits for its event to be set."""

    catalog = load_catalog()

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.hold: dict[str, asyncio.Event] = {}
        self.undecided: set[str] = set()

    async def decide(self, alert: Alert) -> Decision:
        self.asked.append(alert.labels["pod"])
        if alert.alertname in self.hold:
            await self.hold[alert.alertname].wait()
        if alert.alertname in self.undecided:
            return Decision(lambda_function=None, method="chain")
        return Decision(lambda_function="pod-restart", parameters={"name": alert.labels["pod"], "namespace": "shop"},
                        confidence=0.99, method="static")


class FakePublisher:
    def __init__(self) -> None:
        self.triggers: list[tuple[str, Decision]] = []
        self.proposals: list[tuple[str, Decision]] = []  # shadow mode
        self.retries: list[tuple[int, str]] = []
        self.dead_letters: list[str] = []
        self.fail_triggers = False
        self.slow_s = 0.0
        self.timers: list[str] = []  # approval timers parked

    async def approval_timer(self, correlation_id: str) -> None:
        self.timers.append(correlation_id)

    async def trigger(self, alert: Alert, decision: Decision, kind: Kind = Kind.TRIGGER, extra: Any = None,
                      trace: Any = None) -> str:
        if self.fail_triggers:
            raise TransientError("the broker did not confirm")
        (self.triggers if kind is Kind.TRIGGER else self.proposals).append((alert.labels["pod"], decision))
        return f"trigger-{len(self.triggers)}"

    async def retry(self, message: Any, attempts: int, error: str, alertnames: list[str], reason: str = "publish_failed") -> str:
        self.retries.append((attempts, reason))
        return "delay-queue"

    async def dead_letter(self, message: Any, reason: str, error: str, attempts: int, alertnames: list[str]) -> None:
        await asyncio.sleep(self.slow_s)
        self.dead_letters.append(reason)


class World:
    def __init__(self, tmp_path: Path, approvals: Any = None, **overrides: Any) -> None:
        self.settings = Settings(**{"cooldown_s": 600, "rate_limit_burst": 1000, "rate_limit_per_minute": 1000, **overrides})
        self.chain = FakeChain()
        self.publisher = FakePublisher()
        self.limits = MemoryLimits(LimitSettings.of(self.settings))
        self.audit_path = tmp_path / "audit.jsonl"
        self.metrics = Metrics()
        self.outcomes = MemoryOutcomes(self.settings.outcome_ttl_s)
        self.pipeline = Pipeline(self.settings, self.chain, self.limits, self.publisher, self.metrics,  # type: ignore[arg-type]
                                 AuditLog(self.audit_path), self.outcomes, approvals)
        self.consumer = Consumer(self.pipeline, self.publisher, self.metrics, self.settings)  # type: ignore[arg-type]

    def audit(self) -> list[dict[str, Any]]:
        lines = self.audit_path.read_text().splitlines() if self.audit_path.exists() else []
        for line in lines:
            AuditRecord.model_validate_json(line)  # each record is what the readers take
        return [orjson.loads(line) for line in lines]


async def test_a_message_past_the_per_message_cap_triggers_only_the_cap_and_escalates_the_storm_once(tmp_path) -> None:
    world = World(tmp_path, storm_per_message=10)
    # One webhook of 30 crash-looping pods: a node went down, not 30 pods that each need a restart
    incoming = message(*(crash_loop(f"api-{n}") for n in range(30)))
    await world.consumer(incoming)
    restarts = [pod for pod, d in world.publisher.triggers if d.lambda_function == "pod-restart"]
    escalations = [d for _, d in world.publisher.triggers if d.lambda_function == "escalate"]
    assert len(restarts) == 10
    assert len(escalations) == 1 and escalations[0].method == "storm" and "STORM_PER_MESSAGE" in escalations[0].reasoning
    actions = [r["action"] for r in world.audit()]
    assert actions.count("published") == 10 and actions.count("suppressed:storm") == 20
    assert [r for r in world.audit() if r.get("storm_escalation")] == [world.audit()[10]], "the first refused carries it"
    assert incoming.settled == ["ack"]
    # The storm's escalate awaits its result as any trigger does
    first_refused = world.audit()[10]
    await world.consumer(result(first_refused["correlation_id"], "succeeded", function="escalate"))
    outcome = world.audit()[-1]
    assert (outcome["action"], outcome["function"], outcome["trigger_id"]) == ("outcome", "escalate", first_refused["storm_escalation"])
    # A second storm message inside the storm window escalates no more
    await world.consumer(message(*(crash_loop(f"web-{n}") for n in range(30))))
    assert sum(d.lambda_function == "escalate" for _, d in world.publisher.triggers) == 1


async def test_past_the_per_minute_cap_alerts_are_suppressed_as_storm_across_messages(tmp_path) -> None:
    world = World(tmp_path, storm_per_minute=5)
    for n in range(12):
        await world.consumer(message(crash_loop(f"api-{n}")))
    assert sum(d.lambda_function == "pod-restart" for _, d in world.publisher.triggers) == 5
    assert sum(d.lambda_function == "escalate" for _, d in world.publisher.triggers) == 1
    assert world.metrics.registry.get_sample_value("agent_sre_suppressions_total", {"reason": "storm"}) == 7


async def test_a_concurrent_repeat_is_suppressed_at_once_and_costs_no_selector_time(tmp_path) -> None:
    world = World(tmp_path)
    world.chain.hold["KubePodCrashLooping"] = release = asyncio.Event()
    repeats = [asyncio.create_task(world.consumer(message(crash_loop("api-1")))) for _ in range(10)]
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.gather(*repeats)
    assert world.chain.asked == ["api-1"]
    assert len(world.publisher.triggers) == 1
    assert sorted(r["action"] for r in world.audit()) == ["published"] + ["suppressed:cooldown"] * 9


async def test_one_slow_decision_does_not_hold_up_other_messages(tmp_path) -> None:
    world = World(tmp_path, concurrency=4)
    world.chain.hold["SlowToDecide"] = asyncio.Event()
    slow = asyncio.create_task(world.consumer(message(crash_loop("db-0", alertname="SlowToDecide"))))
    await asyncio.wait_for(asyncio.gather(*(world.consumer(message(crash_loop(f"api-{n}"))) for n in range(20))), 5)
    assert len(world.publisher.triggers) == 20 and not slow.done()
    world.chain.hold["SlowToDecide"].set()
    await slow
    assert len(world.publisher.triggers) == 21


async def test_an_undecided_alerts_record_says_its_message_was_dead_lettered(tmp_path) -> None:
    world = World(tmp_path)
    world.chain.undecided.add("UnknownThing")
    await world.consumer(message(crash_loop("api-1"), crash_loop("x-1", alertname="UnknownThing")))
    assert world.publisher.dead_letters == ["no_decision"]
    records = {r["alertname"]: r for r in world.audit()}
    assert records["UnknownThing"]["action"] == "no_decision"
    assert records["UnknownThing"]["message"] == "dead_lettered" and records["UnknownThing"]["dead_letter_reason"] == "no_decision"
    assert records["KubePodCrashLooping"]["action"] == "published" and "message" not in records["KubePodCrashLooping"]
    assert len(world.audit()) == 2, "one record per alert"


async def test_an_unreadable_message_leaves_one_record_saying_it_was_dead_lettered(tmp_path) -> None:
    world = World(tmp_path)
    incoming = message(crash_loop("api-1"))
    incoming.body = b"{not json"
    await world.consumer(incoming)
    [record] = world.audit()
    assert record["action"] == "invalid" and record["message"] == "dead_lettered"
    assert world.publisher.dead_letters == [record["dead_letter_reason"]] and incoming.settled == ["ack"]


async def test_a_failed_trigger_is_retried_and_its_record_names_the_retry(tmp_path) -> None:
    world = World(tmp_path)
    world.publisher.fail_triggers = True
    await world.consumer(message(crash_loop("api-1"), headers={ATTEMPTS: 1}))
    assert world.publisher.retries == [(2, "publish_failed")]
    [record] = world.audit()
    assert record["action"] == "retry" and record["message"] == "retry" and record["attempt"] == 2
    # The claim went back: the retried message may trigger
    world.publisher.fail_triggers = False
    await world.consumer(message(crash_loop("api-1")))
    assert len(world.publisher.triggers) == 1


async def test_shadow_mode_proposes_instead_of_triggering_and_limits_and_audits_as_act_does(tmp_path) -> None:
    world = World(tmp_path, mode="shadow", storm_per_message=3)
    await world.consumer(message(*(crash_loop(f"api-{n}") for n in range(5))))
    await world.consumer(message(crash_loop("api-0")))  # a repeat: the cooldown holds as in act mode
    assert world.publisher.triggers == [], "nothing acts in shadow mode"
    assert [pod for pod, d in world.publisher.proposals if d.lambda_function == "pod-restart"] == ["api-0", "api-1", "api-2"]
    [storm] = [d for _, d in world.publisher.proposals if d.lambda_function == "escalate"]
    assert storm.method == "storm", "the storm's escalation is proposed too"
    actions = [r["action"] for r in world.audit()]
    assert actions == ["proposed"] * 3 + ["suppressed:storm"] * 2 + ["suppressed:cooldown"]
    sample = world.metrics.registry.get_sample_value
    assert sample("agent_sre_proposals_published_total", {"function": "pod-restart"}) == 3
    assert sample("agent_sre_triggers_published_total", {"function": "pod-restart"}) is None


async def test_a_functions_own_mode_overrides_the_workers(tmp_path) -> None:
    world = World(tmp_path, mode="shadow")
    catalog = world.chain.catalog
    trusted = [f.model_copy(update={"mode": "act"}) if f.name == "pod-restart" else f for f in catalog.functions]
    world.chain.catalog = Catalog(functions=trusted, rules=catalog.rules)
    await world.consumer(message(crash_loop("api-1")))
    assert [pod for pod, _ in world.publisher.triggers] == ["api-1"] and world.publisher.proposals == []
    # and the other way round: a worker that acts, with one function kept in shadow
    world = World(tmp_path / "act", mode="act")
    held = [f.model_copy(update={"mode": "shadow"}) if f.name == "pod-restart" else f for f in catalog.functions]
    world.chain.catalog = Catalog(functions=held, rules=catalog.rules)
    await world.consumer(message(crash_loop("api-1")))
    assert world.publisher.triggers == [] and [pod for pod, _ in world.publisher.proposals] == ["api-1"]


async def test_seconds_to_resolve_are_measured_on_the_outcome_stores_clock(tmp_path) -> None:
    world = World(tmp_path)
    now = [1_000.0]
    world.outcomes.clock = lambda: now[0]
    await world.consumer(message(crash_loop("api-1")))
    now[0] += 1500
    await world.consumer(message({**crash_loop("api-1"), "status": "resolved"}))
    [outcome] = [r for r in world.audit() if r["action"] == "outcome"]
    assert outcome["seconds_to_resolve"] == 1500


async def test_a_resolution_is_the_outcome_of_the_trigger_before_it(tmp_path) -> None:
    world = World(tmp_path)
    await world.consumer(message(crash_loop("api-1")))
    [published] = [r for r in world.audit() if r["action"] == "published"]
    await world.consumer(message({**crash_loop("api-1"), "status": "resolved"}))
    [outcome] = [r for r in world.audit() if r["action"] == "outcome"]
    assert outcome["outcome"] == "resolved" and outcome["trigger_id"] == published["trigger_id"]
    assert outcome["function"] == "pod-restart" and 0 <= outcome["seconds_to_resolve"] < 5
    sample = world.metrics.registry.get_sample_value
    assert sample("agent_sre_remediation_outcomes_total", {"function": "pod-restart", "outcome": "resolved"}) == 1
    assert sample("agent_sre_remediation_seconds_to_resolve_count", {"function": "pod-restart"}) == 1
    # Resolved once: a second resolution (an HA copy) is no second outcome
    await world.consumer(message({**crash_loop("api-1"), "status": "resolved"}))
    assert sample("agent_sre_remediation_outcomes_total", {"function": "pod-restart", "outcome": "resolved"}) == 1


async def test_after_two_remediations_that_did_not_resolve_it_the_third_decision_is_escalate(tmp_path) -> None:
    world = World(tmp_path, cooldown_s=0)  # so that each firing past its cooldown is decided again
    for _ in range(3):
        await world.consumer(message(crash_loop("api-1")))
    functions = [d.lambda_function for _, d in world.publisher.triggers]
    assert functions == ["pod-restart", "pod-restart", "escalate"]
    escalation = world.publisher.triggers[2][1]
    assert escalation.method == "outcomes" and "did not resolve it" in escalation.reasoning
    assert world.chain.asked == ["api-1", "api-1"], "the third was decided without the selectors"
    outcomes = [r for r in world.audit() if r["action"] == "outcome"]
    assert [r["outcome"] for r in outcomes] == ["not_resolved", "not_resolved"]
    assert [r["attempts"] for r in outcomes] == [1, 2]
    # Once the alert resolves, a later firing starts over
    await world.consumer(message({**crash_loop("api-1"), "status": "resolved"}))
    await world.consumer(message(crash_loop("api-1")))
    assert world.publisher.triggers[-1][1].lambda_function == "pod-restart"


async def test_a_reported_failure_makes_the_next_decision_escalate_and_a_success_does_not(tmp_path) -> None:
    world = World(tmp_path, cooldown_s=0, max_attempts_per_alert=5)
    await world.consumer(message(crash_loop("api-1")))
    await world.consumer(message(crash_loop("web-1")))
    [api, web] = [r for r in world.audit() if r["action"] == "published"]
    failed, succeeded = result(api["correlation_id"], "failed", message="pod not found"), result(web["correlation_id"], "succeeded")
    for incoming in (failed, succeeded):
        await world.consumer(incoming)
        assert incoming.settled == ["ack"]
    await world.consumer(message(crash_loop("api-1")))
    await world.consumer(message(crash_loop("web-1")))
    assert [(pod, d.lambda_function) for pod, d in world.publisher.triggers[2:]] == [("api-1", "escalate"), ("web-1", "pod-restart")]
    assert "reported that it failed" in world.publisher.triggers[2][1].reasoning
    reported = {r["outcome"]: r for r in world.audit() if r["action"] == "outcome" and r.get("status")}
    assert reported["failed"]["trigger_id"] == api["trigger_id"] and reported["failed"]["result_message"] == "pod not found"
    assert reported["succeeded"]["trigger_id"] == web["trigger_id"]
    # The same result delivered again is no second outcome
    await world.consumer(result(api["correlation_id"], "failed"))
    sample = world.metrics.registry.get_sample_value
    assert sample("agent_sre_remediation_outcomes_total", {"function": "pod-restart", "outcome": "failed"}) == 1


async def test_an_escalate_result_is_its_outcome_and_the_failure_it_escalated_still_stands(tmp_path) -> None:
    # Given a remediation that reported failure, and the escalate that followed it
    world = World(tmp_path, cooldown_s=0, max_attempts_per_alert=5)
    await world.consumer(message(crash_loop("api-1")))
    [restart] = [r for r in world.audit() if r["action"] == "published"]
    await world.consumer(result(restart["correlation_id"], "failed"))
    await world.consumer(message(crash_loop("api-1")))
    escalation = [r for r in world.audit() if r["action"] == "published"][-1]
    assert escalation["decision"]["lambda_function"] == "escalate"
    # When the escalate function reports (the same correlation id: the same occurrence), twice
    for _ in range(2):
        await world.consumer(result(escalation["correlation_id"], "failed", function="escalate", message="webhook 500"))
    # Then its result is an outcome of its own trigger, once; the second matches nothing
    outcome, unmatched = world.audit()[-2:]
    assert (outcome["action"], outcome["outcome"], outcome["function"]) == ("outcome", "failed", "escalate")
    assert outcome["trigger_id"] == escalation["trigger_id"] and outcome["result_message"] == "webhook 500"
    assert unmatched["action"] == "result_unmatched"
    sample = world.metrics.registry.get_sample_value
    assert sample("agent_sre_remediation_outcomes_total", {"function": "escalate", "outcome": "failed"}) == 1
    # and it counted no attempt: the pod-restart's failure still decides the next firing
    await world.consumer(message(crash_loop("api-1")))
    assert world.publisher.triggers[-1][1].lambda_function == "escalate"
    assert "pod-restart reported that it failed" in world.publisher.triggers[-1][1].reasoning


async def test_a_result_for_no_trigger_is_recorded_and_a_malformed_one_dead_lettered(tmp_path) -> None:
    world = World(tmp_path)
    stray = result("no-such-correlation", "succeeded")
    await world.consumer(stray)
    assert stray.settled == ["ack"] and world.publisher.dead_letters == []
    assert world.audit()[-1]["action"] == "result_unmatched"
    await world.consumer(result("x", "done"))  # not a status a result may have
    assert world.publisher.dead_letters == ["invalid_result"]


class UnreachableLimits(MemoryLimits):
    async def check(self, event_key: str, fingerprint: str) -> Refusal | None:
        raise TransientError("shared state (Redis) unavailable: ConnectionError")


class BusyLimits(MemoryLimits):
    async def check(self, event_key: str, fingerprint: str) -> Refusal | None:
        return Refusal.BUSY


async def test_without_its_shared_state_nothing_is_decided_or_acted_on_and_the_message_is_retried(tmp_path) -> None:
    world = World(tmp_path)
    world.pipeline.limits = UnreachableLimits(LimitSettings.of(world.settings))
    incoming = message(crash_loop("api-1"))
    await world.consumer(incoming)
    assert world.chain.asked == [] and world.publisher.triggers == []
    assert world.publisher.retries == [(1, "publish_failed")] and incoming.settled == ["ack"]
    assert "Redis" in world.audit()[0]["error"]


async def test_an_alert_another_replica_holds_is_parked_without_counting_an_attempt(tmp_path) -> None:
    world = World(tmp_path)
    world.pipeline.limits = BusyLimits(LimitSettings.of(world.settings))
    await world.consumer(message(crash_loop("api-1"), headers={ATTEMPTS: 2}))
    assert world.publisher.retries == [(2, "busy")], "parked at the same attempt count: waiting is no failure"
    assert world.publisher.dead_letters == [] and world.chain.asked == []
    [record] = world.audit()
    assert record["action"] == "busy" and record["message"] == "busy"


async def test_a_shutdown_cancelling_the_consumer_mid_settlement_still_finishes_it(tmp_path) -> None:
    world = World(tmp_path)
    world.chain.undecided.add("UnknownThing")
    world.publisher.slow_s = 0.2
    incoming = message(crash_loop("x-1", alertname="UnknownThing"))
    task = asyncio.create_task(world.consumer(incoming))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.3)
    # The dead letter went out and the message was acked: it is not redelivered a second time
    assert world.publisher.dead_letters == ["no_decision"] and incoming.settled == ["ack"]


def test_a_pipeline_that_would_wait_for_approvals_refuses_to_be_built_without_somewhere_to_hold_them(tmp_path) -> None:
    with pytest.raises(ConfigError, match="AGENT_SRE_REDIS_URL"):
        World(tmp_path, approval_risk="medium")
    World(tmp_path, approval_risk="high")  # no function of the catalog is that risky: nothing waits



async def test_an_approval_request_that_cannot_be_published_is_withdrawn_and_retried(tmp_path, redis_url, redis_prefix) -> None:
    import redis.asyncio as aioredis

    from agent_sre.worker.approvals import RedisApprovals
    from agent_sre.worker.redis_client import Batch

    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    approvals = RedisApprovals(Batch(client, 2.0), prefix=redis_prefix, keep_s=60, lease_s=5)
    world = World(tmp_path, approvals=approvals, approval_risk="medium")
    alert = Alert.model_validate(crash_loop("api-1"))
    # The request's event is not confirmed: nothing may stay held, and the message is retried
    world.publisher.fail_triggers = True
    await world.consumer(message(crash_loop("api-1")))
    assert world.publisher.retries == [(1, "publish_failed")]
    assert world.publisher.timers == [alert.correlation_id]  # parked first: harmless without a request
    assert await approvals.get(alert.correlation_id) is None
    # The retry finds the cooldown free (the claim was released) and asks a human this time
    world.publisher.fail_triggers = False
    await world.consumer(message(crash_loop("api-1")))
    held = await approvals.get(alert.correlation_id)
    assert held is not None and held.function == "pod-restart"
    assert world.publisher.triggers == [] and len(world.publisher.proposals) == 1  # the request, no trigger
    assert [r["action"] for r in world.audit()] == ["retry", "approval_requested"]
    await client.aclose()
