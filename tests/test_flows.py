"""The outcome flow and the approval flow on their own: fake publisher, the outcomes in memory,
the approvals in the real Redis; no broker, no pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from agent_sre.errors import Retry, TransientError
from agent_sre.schemas.alert import Alert
from agent_sre.schemas.cloudevent import InboundEvent
from agent_sre.schemas.decision import Decision
from agent_sre.schemas.events import APPROVAL_DENIED_TYPE, APPROVAL_GRANTED_TYPE, RESULT_TYPE
from agent_sre.schemas.verdict import Verdict
from agent_sre.worker.approval_flow import ApprovalFlow
from agent_sre.worker.approvals import Answer, RedisApprovals, State
from agent_sre.worker.audit import AuditLog, AuditTrail
from agent_sre.worker.metrics import Metrics
from agent_sre.worker.outcome_flow import OutcomeFlow
from agent_sre.worker.outcomes import LambdaResult, MemoryOutcomes
from agent_sre.worker.publisher import Kind
from agent_sre.worker.redis_client import connect
from agent_sre.worker.triggers import Triggers

ALERT = Alert.model_validate({"status": "firing", "labels": {"alertname": "KubePodCrashLooping", "pod": "api-1",
                                                             "namespace": "shop"}})
RESTART = Decision(lambda_function="pod-restart", parameters={"name": "api-1", "namespace": "shop"}, confidence=0.99,
                   method="static")


def event(event_type: str = "io.homelab.prometheus.alert.fired", event_id: str = "e-1") -> InboundEvent:
    return InboundEvent(attributes={"type": event_type, "id": event_id}, data={})


class Publisher:
    def __init__(self) -> None:
        self.sent: list[tuple[Kind, str | None]] = []
        self.timers: list[str] = []
        self.fail = False

    async def approval_timer(self, correlation_id: str) -> None:
        self.timers.append(correlation_id)

    async def trigger(self, alert: Alert, decision: Decision, kind: Kind = Kind.TRIGGER, extra: Any = None,
                      trace: Any = None) -> str:
        if self.fail:
            raise TransientError("the broker did not confirm")
        self.sent.append((kind, decision.lambda_function))
        return f"trigger-{len(self.sent)}"


class Claim:
    def __init__(self) -> None:
        self.state = "held"

    async def commit(self) -> None:
        self.state = "committed"

    async def release(self) -> None:
        self.state = "released"


def audit(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_a_result_for_a_trigger_is_its_outcome_and_one_for_none_is_unmatched(tmp_path) -> None:
    outcomes, metrics = MemoryOutcomes(3600), Metrics()
    flow = OutcomeFlow(outcomes, metrics, AuditTrail(AuditLog(tmp_path / "a.jsonl")), Triggers(Publisher(), None, 0), 3)  # type: ignore[arg-type]
    await outcomes.triggered(ALERT.identity, ALERT.correlation_id, "trigger-1", "pod-restart")
    await flow.result(event(RESULT_TYPE), LambdaResult(correlation_id=ALERT.correlation_id, status="failed"))
    await flow.result(event(RESULT_TYPE, "e-2"), LambdaResult(correlation_id="nobody", status="succeeded"))
    first, second = audit(tmp_path / "a.jsonl")
    assert (first["action"], first["outcome"], first["trigger_id"]) == ("outcome", "failed", "trigger-1")
    assert second["action"] == "result_unmatched" and metrics.outcomes.labels("pod-restart", "failed")._value.get() == 1
    # A failure reported: the alert's next decision is a human's
    escalate = await flow.after_earlier_attempts(event(), ALERT, await outcomes.last(ALERT.identity))
    assert escalate is not None and escalate.lambda_function == "escalate" and escalate.method == "outcomes"


async def test_past_its_attempts_an_alert_escalates_and_a_resolution_is_timed(tmp_path) -> None:
    outcomes = MemoryOutcomes(3600)
    flow = OutcomeFlow(outcomes, Metrics(), AuditTrail(AuditLog(tmp_path / "a.jsonl")), Triggers(Publisher(), None, 0), 2)  # type: ignore[arg-type]
    await outcomes.triggered(ALERT.identity, ALERT.correlation_id, "trigger-1", "pod-restart")
    assert await flow.after_earlier_attempts(event(), ALERT, await outcomes.last(ALERT.identity)) is None
    await outcomes.triggered(ALERT.identity, ALERT.correlation_id, "trigger-2", "pod-restart")
    escalate = await flow.after_earlier_attempts(event(), ALERT, await outcomes.last(ALERT.identity))
    assert escalate is not None and "AGENT_SRE_MAX_ATTEMPTS_PER_ALERT=2" in escalate.reasoning
    assert (await flow.resolved(event(), ALERT)) is not None and await flow.resolved(event(), ALERT) is None
    outcomes_written = [(r["outcome"], r["trigger_id"]) for r in audit(tmp_path / "a.jsonl")]
    assert outcomes_written == [("not_resolved", "trigger-1"), ("not_resolved", "trigger-2"), ("resolved", "trigger-2")]


@pytest.fixture
async def approvals(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisApprovals]:
    batch = connect(redis_url, 2.0)
    yield RedisApprovals(batch, prefix=redis_prefix, keep_s=60, lease_s=5)
    await batch.close()


def approval_flow(approvals: RedisApprovals | None, path: Path) -> tuple[ApprovalFlow, Publisher]:
    publisher = Publisher()
    flow = ApprovalFlow(approvals, 60, Triggers(publisher, None, 0), MemoryOutcomes(3600), Metrics(),  # type: ignore[arg-type]
                        AuditTrail(AuditLog(path)))
    return flow, publisher


async def test_a_request_is_held_until_granted_then_triggers_once(tmp_path, approvals) -> None:
    flow, publisher = approval_flow(approvals, tmp_path / "a.jsonl")
    claim = Claim()
    await flow.request(event(), ALERT, RESTART, RESTART.model_dump(mode="json"), claim, Verdict())  # type: ignore[arg-type]
    assert claim.state == "committed" and publisher.timers == [ALERT.correlation_id]
    assert publisher.sent == [(Kind.APPROVAL_REQUESTED, "pod-restart")]
    granted = Answer(correlation_id=ALERT.correlation_id, by="alice")
    await flow.answer(event(APPROVAL_GRANTED_TYPE, "e-2"), granted, Verdict())
    await flow.answer(event(APPROVAL_GRANTED_TYPE, "e-3"), granted, Verdict())  # a second answer finds none waiting
    assert publisher.sent[1:] == [(Kind.TRIGGER, "pod-restart")]
    assert (await approvals.get(ALERT.correlation_id)).state is State.APPROVED  # type: ignore[union-attr]
    actions = [r["action"] for r in audit(tmp_path / "a.jsonl")]
    assert actions == ["approval_requested", "published", "approval_unmatched"]


async def test_a_denied_request_escalates_and_an_unpublished_one_is_given_back_for_a_retry(tmp_path, approvals) -> None:
    flow, publisher = approval_flow(approvals, tmp_path / "a.jsonl")
    publisher.fail = True
    claim = Claim()
    dump = RESTART.model_dump(mode="json")
    with pytest.raises(Retry) as retried:
        await flow.request(event(), ALERT, RESTART, dump, claim, Verdict())  # type: ignore[arg-type]
    assert claim.state == "released" and retried.value.audit == {"decision": dump}
    assert await approvals.get(ALERT.correlation_id) is None  # withdrawn: the retry asks again
    publisher.fail = False
    await flow.request(event(), ALERT, RESTART, dump, Claim(), Verdict())  # type: ignore[arg-type]
    await flow.answer(event(APPROVAL_DENIED_TYPE, "e-2"), Answer(correlation_id=ALERT.correlation_id, by="bob"), Verdict())
    assert publisher.sent == [(Kind.APPROVAL_REQUESTED, "pod-restart"), (Kind.TRIGGER, "escalate")]
    assert audit(tmp_path / "a.jsonl")[-1]["action"] == "approval_denied"
    awaited = await flow.outcomes.escalation_reported(ALERT.correlation_id)  # the escalate's result is awaited
    assert awaited is not None and awaited.trigger_id == "trigger-2"


async def test_without_approvals_an_answer_matches_nothing(tmp_path) -> None:
    flow, publisher = approval_flow(None, tmp_path / "a.jsonl")
    await flow.answer(event(APPROVAL_GRANTED_TYPE), Answer(correlation_id="c-1", by="alice"), Verdict())
    [record] = audit(tmp_path / "a.jsonl")
    assert record["action"] == "approval_unmatched" and "approvals are off" in record["reason"] and publisher.sent == []
