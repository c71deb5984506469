"""Outcome stores, in memory and in the real Redis: the same answers, each outcome recorded once
however many replicas see it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from agent_sre.errors import TransientError
from agent_sre.worker.outcomes import MemoryOutcomes, Outcomes, RedisOutcomes
from agent_sre.worker.redis_client import Batch


@pytest.fixture
async def replicas(redis_url: str, redis_prefix: str) -> AsyncIterator[Callable[..., RedisOutcomes]]:
    """Each call is one more replica (its own client) on the test's Redis prefix."""
    clients: list[aioredis.Redis] = []

    def replica(ttl_s: float = 3600) -> RedisOutcomes:
        clients.append(aioredis.Redis.from_url(redis_url, decode_responses=True))
        return RedisOutcomes(Batch(clients[-1]), prefix=redis_prefix, ttl_s=ttl_s)

    yield replica
    for client in clients:
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, replicas: Callable[..., RedisOutcomes]) -> Callable[..., Outcomes]:
    if request.param == "memory":
        shared = MemoryOutcomes(3600)
        return lambda ttl_s=3600: shared if ttl_s == 3600 else MemoryOutcomes(ttl_s)
    return replicas


async def test_attempts_count_up_until_the_alert_resolves(store) -> None:
    outcomes = store()
    assert await outcomes.last("fp") is None
    await outcomes.triggered("fp", "corr-1", "trigger-1", "pod-restart")
    await outcomes.triggered("fp", "corr-2", "trigger-2", "pod-restart")
    last = await outcomes.last("fp")
    assert last is not None and (last.trigger_id, last.attempts, last.failed) == ("trigger-2", 2, False)
    resolved = await outcomes.resolved("fp")
    assert resolved is not None and resolved.trigger_id == "trigger-2"
    assert await outcomes.last("fp") is None and await outcomes.resolved("fp") is None
    await outcomes.triggered("fp", "corr-3", "trigger-3", "pod-restart")
    assert (await outcomes.last("fp")).attempts == 1, "a resolution starts the count over"  # type: ignore[union-attr]


async def test_each_outcome_is_recorded_once_across_replicas(store) -> None:
    first, second = store(), store()
    await first.triggered("fp", "corr-1", "trigger-1", "pod-restart")
    judged = await asyncio.gather(*(replica.judge_unresolved("fp", "trigger-1") for replica in (first, second) * 3))
    assert sum(judged) == 1
    assert not await first.judge_unresolved("fp", "trigger-0"), "only the latest trigger is judged"
    reports = await asyncio.gather(*(replica.reported("corr-1", failed=True) for replica in (first, second) * 3))
    assert sum(r is not None for r in reports) == 1
    assert (await second.last("fp")).failed  # type: ignore[union-attr]
    resolutions = await asyncio.gather(*(replica.resolved("fp") for replica in (first, second) * 3))
    assert sum(r is not None for r in resolutions) == 1


async def test_a_result_for_an_older_occurrence_or_an_unknown_one_matches_nothing(store) -> None:
    outcomes = store()
    assert await outcomes.reported("nobody", failed=False) is None
    await outcomes.triggered("fp", "corr-1", "trigger-1", "pod-restart")
    await outcomes.triggered("fp", "corr-2", "trigger-2", "pod-restart")
    assert await outcomes.reported("corr-1", failed=True) is None
    assert not (await outcomes.last("fp")).failed  # type: ignore[union-attr]


async def test_an_escalate_awaits_its_result_once_and_leaves_the_remediation_in_place(store) -> None:
    first, second = store(), store()
    await first.triggered("fp", "corr-1", "trigger-1", "pod-restart")
    await first.reported("corr-1", failed=True)
    # The same occurrence escalated: its result is awaited apart from the remediation's
    await first.escalated("corr-1", "trigger-2")
    reports = await asyncio.gather(*(replica.escalation_reported("corr-1") for replica in (first, second) * 3))
    [escalation] = [r for r in reports if r is not None]
    assert (escalation.trigger_id, escalation.function, escalation.attempts) == ("trigger-2", "escalate", 0)
    last = await second.last("fp")
    assert last is not None and (last.trigger_id, last.attempts, last.failed) == ("trigger-1", 1, True)
    assert await first.reported("corr-1", failed=False) is None, "the remediation's result is recorded already"
    assert await first.escalation_reported("nobody") is None


async def test_a_remediation_waits_for_its_outcome_only_so_long(store) -> None:
    outcomes = store(ttl_s=0.3)
    await outcomes.triggered("fp", "corr-1", "trigger-1", "pod-restart")
    assert await outcomes.last("fp") is not None
    await outcomes.escalated("corr-2", "trigger-2")
    await asyncio.sleep(0.5)
    assert await outcomes.last("fp") is None
    assert await outcomes.escalation_reported("corr-2") is None


async def test_redis_unreachable_is_a_transient_error(redis_prefix: str) -> None:
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    outcomes = RedisOutcomes(Batch(client), prefix=redis_prefix, ttl_s=60)
    try:
        with pytest.raises(TransientError, match="Redis"):
            await outcomes.triggered("fp", "corr", "trigger", "pod-restart")
        with pytest.raises(TransientError, match="Redis"):
            await outcomes.resolved("fp")
    finally:
        await client.aclose()
