"""The limits in Redis (the real one): the same answers as in memory, and atomic across replicas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from agent_sre.errors import TransientError
from agent_sre.worker.limits import Limits, LimitSettings, MemoryLimits, Refusal
from agent_sre.worker.outcomes import RedisOutcomes
from agent_sre.worker.shared import RedisLimits

OPTIONS = {"cooldown_s": 600, "burst": 2, "per_minute": 1, "storm_per_minute": 3, "storm_window_s": 600,
           "dedup_ttl_s": 3600}


@pytest.fixture
async def replicas(redis_url: str, redis_prefix: str) -> AsyncIterator[Callable[..., RedisLimits]]:
    """Each call is one more replica sharing the test's Redis prefix."""
    made: list[RedisLimits] = []

    def replica(**overrides: Any) -> RedisLimits:
        ttl = overrides.pop("claim_ttl_s", 30)
        made.append(RedisLimits.from_url(redis_url, 2.0, LimitSettings(**{**OPTIONS, **overrides}), prefix=redis_prefix,
                                         claim_ttl_s=ttl))
        return made[-1]

    yield replica
    for limits in made:
        await limits.close()


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest, replicas: Callable[..., RedisLimits]) -> Callable[..., Limits]:
    if request.param == "memory":
        return lambda **overrides: MemoryLimits(LimitSettings(**{**OPTIONS, **overrides}))
    return replicas


async def test_both_backends_refuse_by_cooldown_rate_and_storm_and_a_release_gives_all_back(backend) -> None:
    limits = backend()
    first = await limits.reserve("e1/a", "fp1", "pod-restart", "shop", True)
    assert not isinstance(first, Refusal)
    assert await limits.check("e1/a", "fp1") is Refusal.DUPLICATE, "in progress here: a copy is a duplicate"
    assert await limits.check("e2/a", "fp1") is Refusal.COOLDOWN
    assert not isinstance(await limits.reserve("e1/b", "fp2", "pod-restart", "shop", True), Refusal)
    assert await limits.reserve("e1/c", "fp3", "pod-restart", "shop", True) is Refusal.RATE_LIMIT
    assert not isinstance(await limits.reserve("e1/c", "fp3", "pod-restart", "web", True), Refusal), "per namespace"
    assert await limits.reserve("e1/d", "fp4", "rollout-restart", "web", True) is Refusal.STORM, "3 a minute in all"
    assert not isinstance(await limits.reserve("e1/d", "fp4", "escalate", "web", False), Refusal), "escalate is no action"
    for n in range(5):  # nor rate-limited: that would drop the alerts a human must see
        assert not isinstance(await limits.reserve(f"e1/x{n}", f"fx{n}", "escalate", "shop", False), Refusal)
    await first.release()
    await first.release()  # twice gives back once
    assert await limits.check("e2/a", "fp1") is None, "a released claim holds nothing"
    again = await limits.reserve("e2/a", "fp1", "pod-restart", "shop", True)
    assert not isinstance(again, Refusal)
    await again.commit()
    assert await limits.check("e2/a", "fp1") is Refusal.DUPLICATE
    assert await limits.check("e3/a", "fp1") is Refusal.COOLDOWN
    assert await limits.reserve("e1/e", "fp5", "pod-restart", "shop", True) is Refusal.RATE_LIMIT


async def test_both_backends_escalate_a_storm_once_until_that_escalation_is_released(backend) -> None:
    one, other = backend(), backend()
    assert await one.claim_storm_escalation()
    assert not await one.claim_storm_escalation()
    if isinstance(one, RedisLimits):
        assert not await other.claim_storm_escalation(), "one escalation for the whole fleet"
    await one.release_storm_escalation()
    assert await one.claim_storm_escalation()


async def test_replicas_racing_for_one_alert_get_one_claim_and_the_others_wait(replicas) -> None:
    fleet = [replicas() for _ in range(8)]
    answers = await asyncio.gather(*(r.reserve("e1/a", "fp1", "pod-restart", "shop", True) for r in fleet))
    claims = [a for a in answers if not isinstance(a, Refusal)]
    assert len(claims) == 1
    assert [a for a in answers if isinstance(a, Refusal)] == [Refusal.BUSY] * 7, "held elsewhere: look again later"
    winner = fleet[answers.index(claims[0])]
    loser = fleet[(answers.index(claims[0]) + 1) % 8]
    await claims[0].commit()
    assert await loser.check("e1/a", "fp1") is Refusal.DUPLICATE
    assert await loser.check("e9/a", "fp1") is Refusal.COOLDOWN
    assert await winner.check("e9/a", "fp1") is Refusal.COOLDOWN


async def test_a_bucket_shared_by_replicas_hands_out_only_its_burst(replicas) -> None:
    fleet = [replicas(burst=5, per_minute=0.001, storm_per_minute=1000) for _ in range(4)]
    answers = await asyncio.gather(*(
        fleet[n % 4].reserve(f"e/{n}", f"fp{n}", "pod-restart", "shop", True) for n in range(40)
    ))
    assert sum(not isinstance(a, Refusal) for a in answers) == 5
    assert {a for a in answers if isinstance(a, Refusal)} == {Refusal.RATE_LIMIT}


async def test_a_replica_killed_mid_publish_blocks_its_alert_only_until_its_claim_expires(replicas) -> None:
    dead, alive = replicas(claim_ttl_s=0.3), replicas(claim_ttl_s=0.3)
    assert not isinstance(await dead.reserve("e1/a", "fp1", "pod-restart", "shop", True), Refusal)
    # The redelivered message reaches the other replica: told to wait, not suppressed (that would lose it)
    assert await alive.check("e1/a", "fp1") is Refusal.BUSY
    await asyncio.sleep(0.4)
    claim = await alive.reserve("e1/a", "fp1", "pod-restart", "shop", True)
    assert not isinstance(claim, Refusal)


async def test_its_own_claim_left_by_a_failed_release_is_taken_back(replicas, monkeypatch) -> None:
    limits = replicas()
    claim = await limits.reserve("e1/a", "fp1", "pod-restart", "shop", True)
    assert not isinstance(claim, Refusal)

    async def unreachable(*_: Any) -> None:
        raise TransientError("shared state (Redis) unavailable: ConnectionError: Redis went away")  # as Batch fails it

    monkeypatch.setattr(limits, "_release", unreachable)
    with pytest.raises(TransientError):
        await claim.release()
    monkeypatch.undo()
    # The retried message comes back to this replica: nobody publishes it, so it is not a duplicate
    assert await limits.check("e1/a", "fp1") is None
    assert not isinstance(await limits.reserve("e1/a", "fp1", "pod-restart", "shop", True), Refusal)


@pytest.mark.parametrize("call", [
    lambda limits: limits.check("e1/a", "fp1"),
    lambda limits: limits.reserve("e1/a", "fp1", "pod-restart", "shop", True),
    lambda limits: limits.claim_storm_escalation(),
])
async def test_an_unreachable_redis_is_a_transient_error_never_a_pass(
    own_redis, redis_prefix: str, call: Callable[[RedisLimits], Awaitable[Any]]
) -> None:
    limits = RedisLimits.from_url(own_redis.url, 0.5, LimitSettings(**OPTIONS), prefix=redis_prefix, claim_ttl_s=30)
    own_redis.stop()
    with pytest.raises(TransientError, match="Redis"):
        await call(limits)
    await limits.close()


async def test_a_silent_redis_times_out_and_its_late_answers_never_reach_the_next_call(own_redis, redis_prefix: str) -> None:
    """Redis stopped (SIGSTOP), not gone: the socket takes the calls and nothing answers. Each call
    fails within the timeout; once Redis answers again, the answers it owed the timed-out calls
    must not be read as the next call's."""
    limits = RedisLimits.from_url(own_redis.url, 0.3, LimitSettings(**OPTIONS), prefix=redis_prefix, claim_ttl_s=30)
    assert not isinstance(await limits.reserve("e1/a", "fp1", "pod-restart", "shop", True), Refusal)  # connected
    own_redis.pause()
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(TransientError, match="Redis"):
            await limits.reserve("e2/a", "fp2", "pod-restart", "shop", True)
        assert asyncio.get_running_loop().time() - started < 2.0
    finally:
        own_redis.resume()
    # fp2's reservation may or may not have been applied before the pause took hold; either way
    # the next answers are these calls' own: fp1 is in its claim (cooldown), fp3 is free.
    assert await limits.check("e9/a", "fp1") is Refusal.COOLDOWN
    assert await limits.check("e3/a", "fp3") is None
    await limits.close()


async def test_a_commit_and_the_outcome_recorded_beside_it_share_one_round_trip(replicas, redis_prefix, monkeypatch) -> None:
    # What the pipeline sends together (the check with the outcome lookup, the commit with the
    # remediation's record) is one pipeline to Redis, not one round trip each
    limits = replicas()
    outcomes = RedisOutcomes(limits.batch, prefix=redis_prefix, ttl_s=600)
    claim = await limits.reserve("e1/a", "fp1", "pod-restart", "shop", True)
    assert not isinstance(claim, Refusal)
    round_trips: list[int] = []
    send = limits.batch._pipeline

    async def counted(batch: list[Any]) -> list[object]:
        round_trips.append(len(batch))
        return await send(batch)

    monkeypatch.setattr(limits.batch, "_pipeline", counted)
    records = [claim.commit(), outcomes.triggered("fp1", "corr-1", "trigger-1", "pod-restart")]
    for record in records:
        await record
    looking_up = outcomes.last("fp1")
    assert await limits.check("e2/a", "fp1") is Refusal.COOLDOWN
    earlier = await looking_up

    assert round_trips == [2, 2]
    assert earlier is not None and earlier.trigger_id == "trigger-1" and earlier.attempts == 1
