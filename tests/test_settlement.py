"""The consumer's one mapping, verdict -> settlement, on its own: no broker, a fake publisher; and
the claim-scoped helper every step that holds something goes through."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agent_sre.errors import InputError, Retry, TransientError
from agent_sre.schemas.audit import Settlement
from agent_sre.schemas.verdict import Verdict
from agent_sre.settings import Settings
from agent_sre.worker.audit import AuditLog, AuditTrail
from agent_sre.worker.consumer import Consumer
from agent_sre.worker.deadletter import ATTEMPTS
from agent_sre.worker.holding import holding
from agent_sre.worker.metrics import Metrics


class Message:
    body, content_type, message_id, delivery_tag = b"", "application/json", "m-1", 1

    def __init__(self, attempts: int = 0) -> None:
        self.headers = {ATTEMPTS: attempts} if attempts else {}
        self.settled: list[str] = []

    @property
    def channel(self) -> Message:
        return self

    async def basic_ack(self, delivery_tag: int, wait: bool = True) -> None:
        self.settled.append("ack")

    async def nack(self, requeue: bool = True) -> None:
        self.settled.append("nack")


class Publisher:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, str]] = []
        self.fail = fail

    async def retry(self, message: Any, attempts: int, error: str, names: list[str], reason: str = "publish_failed") -> str:
        if self.fail:
            raise TransientError("the broker did not confirm")
        self.sent.append(("retry", reason))
        return "delay"

    async def dead_letter(self, message: Any, reason: str, error: str, attempts: int, names: list[str]) -> None:
        if self.fail:
            raise TransientError("the broker did not confirm")
        self.sent.append(("dead_letter", reason))


class OnePipeline:
    """Gives the verdict it was made with."""

    def __init__(self, verdict: Verdict, trail: AuditTrail) -> None:
        self.verdict, self.trail = verdict, trail

    async def process(self, message: Any) -> Verdict:
        return self.verdict


CASES = [
    # verdict, attempts so far, what is published, the metric's label, the audit `message`
    (Verdict(), 0, [], "processed", None),
    (Verdict(retry_reason="Redis away"), 0, [("retry", "publish_failed")], "retry", Settlement.RETRY),
    (Verdict(retry_reason="Redis away"), 2, [("dead_letter", "retries_exhausted")], "retries_exhausted",
     Settlement.DEAD_LETTERED),
    (Verdict(invalid=InputError("invalid_json", "not JSON")), 0, [("dead_letter", "invalid_json")], "invalid_json",
     Settlement.DEAD_LETTERED),
    (Verdict(busy=["A"]), 0, [("retry", "busy")], "busy", Settlement.BUSY),
    (Verdict(failed=["A: boom"]), 0, [("dead_letter", "alert_error")], "alert_error", Settlement.DEAD_LETTERED),
    (Verdict(undecided=["A"]), 0, [("dead_letter", "no_decision")], "no_decision", Settlement.DEAD_LETTERED),
    # The retry reason comes first: a message that must be retried is never dead-lettered for the rest
    (Verdict(retry_reason="x", undecided=["A"], busy=["B"]), 0, [("retry", "publish_failed")], "retry", Settlement.RETRY),
]


@pytest.mark.parametrize(("verdict", "attempts", "published", "label", "message"), CASES)
async def test_each_verdict_maps_to_one_settlement_then_one_ack(tmp_path, verdict, attempts, published, label,
                                                                message) -> None:
    metrics, publisher, trail = Metrics(), Publisher(), AuditTrail(AuditLog(tmp_path / "audit.jsonl"))
    verdict.records.append({"action": "no_decision", "alertname": "A"})
    consumer = Consumer(OnePipeline(verdict, trail), publisher, metrics, Settings(retry_max_attempts=3))  # type: ignore[arg-type]
    incoming = Message(attempts)
    await consumer(incoming)
    assert publisher.sent == published and incoming.settled == ["ack"]
    assert metrics.events.labels("other", label)._value.get() == 1
    assert verdict.records == []  # written, with what became of the message
    written = (tmp_path / "audit.jsonl").read_text()
    assert (f'"message":"{message.value}"' in written) if message else '"message"' not in written


async def test_a_settlement_that_cannot_be_published_requeues_the_message_unacked(tmp_path) -> None:
    metrics, trail = Metrics(), AuditTrail(AuditLog(tmp_path / "audit.jsonl"))
    consumer = Consumer(OnePipeline(Verdict(undecided=["A"]), trail), Publisher(fail=True), metrics, Settings())  # type: ignore[arg-type]
    incoming = Message()
    await consumer(incoming)
    assert incoming.settled == ["nack"] and metrics.events.labels("other", "requeued")._value.get() == 1


class Held:
    def __init__(self) -> None:
        self.given_back = 0

    async def release(self) -> None:
        self.given_back += 1


@pytest.mark.parametrize(("raised", "expected", "retry"), [
    (TransientError("unconfirmed"), Retry, {"decision": {"f": 1}}),  # retried, with the alert's decision
    (TransientError("unconfirmed"), TransientError, None),
    (ValueError("bug"), ValueError, {"decision": {}}),  # the alert alone is dead-lettered
    (asyncio.CancelledError(), asyncio.CancelledError, {"decision": {}}),  # shutdown: redelivered
])
async def test_whatever_stops_a_step_gives_back_what_it_holds_and_propagates(raised, expected, retry) -> None:
    first, second = Held(), Held()
    with pytest.raises(expected) as caught:
        async with holding(first.release, second.release, retry=retry):
            raise raised
    assert first.given_back == second.given_back == 1
    assert type(caught.value) is expected
    if expected is Retry:
        assert caught.value.audit == retry and str(caught.value) == "unconfirmed"


async def test_a_step_that_finishes_keeps_what_it_holds() -> None:
    held = Held()
    async with holding(held.release, retry={}):
        pass
    assert held.given_back == 0
