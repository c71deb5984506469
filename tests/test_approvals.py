"""Approvals against the real Redis and RabbitMQ: a risky decision waits for a human, survives a
worker restart, and ends in exactly one trigger (approved) or an escalate (denied, expired)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from agent_sre.cli import app
from agent_sre.errors import ConfigError
from agent_sre.schemas.alert import Alert
from agent_sre.schemas.decision import Decision
from agent_sre.settings import Settings
from agent_sre.worker.app import Worker
from agent_sre.worker.approvals import APPROVAL_REQUESTED_TYPE, Approval, NotWaiting, RedisApprovals, State, waiting
from agent_sre.worker.audit import AuditLog
from agent_sre.worker.publisher import TRIGGER_TYPE
from agent_sre.worker.redis_client import Batch
from agent_sre.worker.topology import delay_queue_name
from tests.broker_harness import Harness, crash_loop

TOKEN = "approve-token-1"


@pytest.fixture
async def approvals(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisApprovals]:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield RedisApprovals(Batch(client, 2.0), prefix=redis_prefix, keep_s=60, lease_s=0.3)
    await client.aclose()


def request(pod: str = "api-1", ttl_s: float = 60, now: float | None = None) -> Approval:
    alert = Alert.model_validate(crash_loop(pod))
    decision = Decision(lambda_function="pod-restart", parameters={"name": pod, "namespace": "shop"}, confidence=0.97,
                        method="trm", reasoning="crash looping")
    return Approval.of(alert, decision, ttl_s, now=now)


async def test_one_request_per_occurrence_and_one_answer_wins(approvals: RedisApprovals) -> None:
    first = request()
    assert await approvals.request(first) is None
    earlier = await approvals.request(request())  # the same occurrence again: the first one stands
    assert earlier is not None and earlier.state is State.PENDING and earlier.requested_at == first.requested_at
    taken, second = await asyncio.gather(approvals.take(first.correlation_id), approvals.take(first.correlation_id))
    winners = [t for t in (taken, second) if isinstance(t, Approval)]
    assert len(winners) == 1 and "answering" in (taken, second)
    alert, decision = winners[0].rebuilt()
    assert alert.labels["pod"] == "api-1" and decision.parameters == {"name": "api-1", "namespace": "shop"}
    await approvals.finish(first.correlation_id, State.APPROVED, "alice")
    assert await approvals.take(first.correlation_id) == "approved"
    with pytest.raises(NotWaiting, match="approved by alice"):
        await waiting(approvals, first.correlation_id)
    # Approved once (that remediation ran): the next attempt for the occurrence is asked again
    assert await approvals.request(request()) is None


async def test_a_denied_occurrence_is_never_asked_again(approvals: RedisApprovals) -> None:
    first = request()
    await approvals.request(first)
    assert isinstance(await approvals.take(first.correlation_id), Approval)
    await approvals.finish(first.correlation_id, State.DENIED, "bob")
    earlier = await approvals.request(request())
    assert earlier is not None and earlier.state is State.DENIED and earlier.by == "bob"


async def test_an_answer_whose_replica_died_is_taken_again_after_its_lease(approvals: RedisApprovals) -> None:
    first = request()
    await approvals.request(first)
    assert isinstance(await approvals.take(first.correlation_id), Approval)  # and never finished
    assert await approvals.take(first.correlation_id) == "answering"
    await asyncio.sleep(0.4)  # the lease is 0.3 s
    assert isinstance(await approvals.take(first.correlation_id), Approval)
    await approvals.give_back(first.correlation_id)  # its publish failed
    assert isinstance(await approvals.take(first.correlation_id), Approval)


async def test_the_timer_takes_a_request_only_once_it_expired(approvals: RedisApprovals) -> None:
    live, stale = request("api-1"), request("api-2", ttl_s=5, now=time.time() - 10)
    await approvals.request(live)
    await approvals.request(stale)
    assert await approvals.take(live.correlation_id, expired=True) == "early"  # a forged or stray timer
    assert isinstance(await approvals.take(stale.correlation_id, expired=True), Approval)
    assert await approvals.take("no-such-id") == "unknown"


async def test_a_withdrawn_request_is_listed_no_more_and_takes_no_answer(approvals: RedisApprovals) -> None:
    kept, resolved = request("api-1"), request("api-2")
    await approvals.request(kept)
    await approvals.request(resolved)
    assert {a.correlation_id for a in await approvals.pending()} == {kept.correlation_id, resolved.correlation_id}
    withdrawn = await approvals.withdraw(resolved.correlation_id)
    assert withdrawn is not None and withdrawn.function == "pod-restart"
    assert await approvals.withdraw(resolved.correlation_id) is None
    assert await approvals.take(resolved.correlation_id) == "withdrawn"
    assert [a.correlation_id for a in await approvals.pending()] == [kept.correlation_id]


# --- the worker: requests, a restart, and the three ways to answer --------------------------------


@pytest.fixture
async def approval_worker(
    broker_settings: Settings, amqp_connection, tmp_path: Path, redis_url: str, redis_prefix: str
) -> AsyncIterator[Any]:
    """Start (and restart) workers that ask for approval of medium risk and above."""
    workers: list[Worker] = []
    ttls: set[float] = set()

    async def start(**overrides: Any) -> Harness:
        settings = broker_settings.model_copy(update={
            "redis_url": SecretStr(redis_url), "redis_prefix": redis_prefix, "approval_risk": "medium",
            "http_token": SecretStr(TOKEN), **overrides,
        })
        ttls.add(settings.approval_ttl_s)
        audit_path = tmp_path / f"audit-{len(workers)}.jsonl"
        worker = Worker(settings, audit=AuditLog(audit_path))
        workers.append(worker)
        await worker.start()
        harness = Harness(worker, await amqp_connection.channel(), audit_path)
        await harness.bind_capture()
        return harness

    yield start
    for worker in workers:
        await worker.stop(grace_s=5)
    channel = await amqp_connection.channel()
    for ttl in ttls:
        await channel.queue_delete(delay_queue_name(broker_settings.input_queue, ttl))


async def post_answer(harness: Harness, correlation_id: str, body: Any, token: str = TOKEN) -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{harness.worker.http_port}/approvals/{correlation_id}"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as response:
            return response.status, await response.json()


def answer_with_cli(harness: Harness, command: str, correlation_id: str, by: str) -> Any:
    settings = harness.settings
    env = {"AGENT_SRE_AMQP_URL": settings.amqp_url.get_secret_value(),  # type: ignore[union-attr]
           "AGENT_SRE_REDIS_URL": settings.redis_url.get_secret_value(),  # type: ignore[union-attr]
           "AGENT_SRE_REDIS_PREFIX": settings.redis_prefix, "AGENT_SRE_INPUT_EXCHANGE": settings.input_exchange,
           "AGENT_SRE_INPUT_QUEUE": settings.input_queue, "AGENT_SRE_OUTPUT_EXCHANGE": settings.output_exchange,
           "AGENT_SRE_RETRY_BASE_DELAY_S": "0.2", "AGENT_SRE_RETRY_MAX_DELAY_S": "1.0",
           "AGENT_SRE_RETRY_MAX_ATTEMPTS": "3"}
    return CliRunner().invoke(app, ["approvals", command, *([correlation_id, "--by", by] if correlation_id else [])], env=env)


async def test_a_risky_action_waits_for_approval_across_a_restart_then_triggers_once(approval_worker) -> None:
    harness = await approval_worker()
    await harness.send(crash_loop())
    [requested] = await harness.triggers(1)
    assert requested.headers["type"] == APPROVAL_REQUESTED_TYPE and requested.headers["subject"] == "pod-restart"
    data = orjson.loads(requested.body)
    correlation_id = requested.headers["correlationid"]
    assert data["correlation_id"] == correlation_id and data["parameters"] == {"name": "api-7f9", "namespace": "shop"}
    assert data["alert"]["labels"]["pod"] == "api-7f9" and data["reasoning"] and data["phases"][0]["selector"] == "static"
    assert 3500 < data["expires_at"] - time.time() <= 3600
    assert [r["action"] for r in harness.audit()] == ["approval_requested"]
    assert harness.sample("agent_sre_approvals_total", function="pod-restart", step="requested") == 1

    # The worker restarts: the request is in Redis, not in its memory
    await harness.worker.stop(grace_s=5)
    harness = await approval_worker()
    listed = await asyncio.to_thread(answer_with_cli, harness, "list", "", "")
    assert listed.exit_code == 0 and correlation_id in listed.output and "pod-restart" in listed.output

    status, body = await post_answer(harness, correlation_id, {"approved": True, "by": "alice"})
    assert status == 202 and body["function"] == "pod-restart" and body["answer"] == "approved"
    [trigger] = await harness.triggers(1)
    assert trigger.headers["type"] == TRIGGER_TYPE and trigger.headers["correlationid"] == correlation_id
    triggered = orjson.loads(trigger.body)
    assert triggered["approved_by"] == "alice" and triggered["parameters"] == data["parameters"]
    await harness.settled(1)
    [record] = [r for r in harness.audit() if r["action"] == "published"]
    assert record["by"] == "alice" and record["trigger_id"] == trigger.message_id
    assert harness.sample("agent_sre_approvals_total", function="pod-restart", step="approved") == 1

    # A second answer, however it comes, finds nothing to approve: never a second trigger
    status, body = await post_answer(harness, correlation_id, {"approved": True, "by": "carol"})
    assert status == 409 and "approved by alice" in body["message"]
    await harness.triggers(0)
    # The alert repeating meanwhile is in its cooldown: no new request
    await harness.send(crash_loop())
    await harness.settled(2)
    await harness.triggers(0)


async def test_a_denial_from_the_cli_escalates(approval_worker) -> None:
    harness = await approval_worker()
    await harness.send(crash_loop())
    [requested] = await harness.triggers(1)
    result = await asyncio.to_thread(answer_with_cli, harness, "deny", requested.headers["correlationid"], "bob")
    assert result.exit_code == 0, result.output
    [escalation] = await harness.triggers(1)
    data = orjson.loads(escalation.body)
    assert escalation.headers["subject"] == "escalate" and data["triggered_by"] == "approval"
    assert "denied by bob" in data["reasoning"]
    await harness.settled(2)
    assert harness.audit()[-1]["action"] == "approval_denied" and harness.audit()[-1]["by"] == "bob"
    assert harness.sample("agent_sre_approvals_total", function="pod-restart", step="denied") == 1
    again = await asyncio.to_thread(answer_with_cli, harness, "approve", requested.headers["correlationid"], "eve")
    assert again.exit_code == 1 and "denied by bob" in again.output


async def test_an_unanswered_request_escalates_once_its_ttl_is_up(approval_worker) -> None:
    harness = await approval_worker(approval_ttl_s=1.0)
    await harness.send(crash_loop())
    [requested] = await harness.triggers(1)
    [escalation] = await harness.triggers(1, timeout_s=15)
    data = orjson.loads(escalation.body)
    assert escalation.headers["subject"] == "escalate" and data["correlation_id"] == requested.headers["correlationid"]
    assert "within 1s" in data["reasoning"]
    await harness.settled(2)
    assert harness.audit()[-1]["action"] == "approval_expired"
    assert harness.sample("agent_sre_approvals_total", function="pod-restart", step="expired") == 1


async def test_a_request_is_withdrawn_when_its_alert_resolves(approval_worker) -> None:
    harness = await approval_worker(approval_ttl_s=1.0)
    await harness.send(crash_loop())
    [requested] = await harness.triggers(1)
    await harness.send({**crash_loop(), "status": "resolved"})  # the same fingerprint and startsAt
    await harness.settled(2)
    assert [r["action"] for r in harness.audit()][-2:] == ["resolved", "approval_withdrawn"]
    status, body = await post_answer(harness, requested.headers["correlationid"], {"approved": True, "by": "alice"})
    assert status == 409 and "withdrawn" in body["message"]
    await asyncio.sleep(2.0)  # its timer comes back and finds nothing to escalate
    await harness.settled(3)
    await harness.triggers(0)
    assert harness.sample("agent_sre_approvals_total", function="pod-restart", step="withdrawn") == 1


@pytest.mark.parametrize(("body", "token", "status"), [
    ({"approved": "yes", "by": "alice"}, TOKEN, 400),
    ({"approved": True}, TOKEN, 400),
    ({"approved": True, "by": "alice"}, "wrong", 401),
])
async def test_a_bad_or_unauthorised_answer_is_refused(approval_worker, body: Any, token: str, status: int) -> None:
    harness = await approval_worker()
    await harness.send(crash_loop())
    [requested] = await harness.triggers(1)
    got, _ = await post_answer(harness, requested.headers["correlationid"], body, token=token)
    assert got == status
    got, _ = await post_answer(harness, "no-such-request", {"approved": True, "by": "alice"})
    assert got == 404
    await harness.triggers(0)


async def test_approvals_over_http_need_a_token(approval_worker) -> None:
    harness = await approval_worker(http_token=None)
    got, body = await post_answer(harness, "anything", {"approved": True, "by": "alice"})
    assert got == 403 and "AGENT_SRE_HTTP_TOKEN" in body["message"]


async def test_approvals_without_redis_refuse_to_start(broker_settings: Settings) -> None:
    worker = Worker(broker_settings.model_copy(update={"approval_risk": "medium"}))
    with pytest.raises(ConfigError, match="AGENT_SRE_REDIS_URL"):
        await worker.start()
    await worker.stop(grace_s=1)

