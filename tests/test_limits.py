"""Rate limits and loop prevention, on a fake clock: no sleeping."""

from __future__ import annotations

from agent_sre.worker.limits import Cooldown, LimitSettings, MemoryLimits, Refusal, TokenBucket, TtlSet


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(burst=3, per_minute=6, clock=clock)  # one token every 10 s
    assert [bucket.take("k") for _ in range(4)] == [True, True, True, False]
    assert bucket.take("other"), "each key has its own bucket"
    clock.now += 9
    assert not bucket.take("k")
    clock.now += 1
    assert bucket.take("k")
    assert not bucket.take("k")


def test_token_bucket_never_holds_more_than_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(burst=2, per_minute=60, clock=clock)
    clock.now += 3600
    assert [bucket.take("k") for _ in range(3)] == [True, True, False]
    bucket.give_back("k")
    bucket.give_back("k")
    bucket.give_back("k")
    assert [bucket.take("k") for _ in range(3)] == [True, True, False]


def test_cooldown_blocks_a_key_until_it_expires_and_release_lifts_it() -> None:
    clock = FakeClock()
    cooldown = Cooldown(seconds=60, clock=clock)
    assert cooldown.reserve("fp")
    assert not cooldown.reserve("fp")
    assert cooldown.reserve("other")
    clock.now += 60
    assert cooldown.reserve("fp")
    cooldown.release("fp")
    assert cooldown.reserve("fp"), "a released reservation does not hold the key"


def test_ttl_set_forgets_after_the_ttl_and_beyond_its_size() -> None:
    clock = FakeClock()
    seen = TtlSet(ttl_s=10, clock=clock, max_items=3)
    seen.add(("event", "a"))
    assert ("event", "a") in seen
    clock.now += 10
    assert ("event", "a") not in seen
    for key in "bcde":
        seen.add(key)
    assert len(seen) == 3
    assert "b" not in seen and "e" in seen


def memory_limits(clock: FakeClock, **overrides: float) -> MemoryLimits:
    options = {"cooldown_s": 600, "burst": 2, "per_minute": 1, "storm_per_minute": 100, "storm_window_s": 600,
               "dedup_ttl_s": 3600, **overrides}
    return MemoryLimits(LimitSettings(**options), clock=clock)  # type: ignore[arg-type]


async def test_limits_suppress_by_cooldown_then_by_rate_and_a_release_restores_both() -> None:
    limits = memory_limits(FakeClock())
    first = await limits.reserve("e1/a", "fp1", "pod-restart", "shop", True)
    assert not isinstance(first, Refusal)
    assert await limits.reserve("e2/a", "fp1", "pod-restart", "shop", True) is Refusal.COOLDOWN
    assert not isinstance(await limits.reserve("e1/b", "fp2", "pod-restart", "shop", True), Refusal)
    assert await limits.reserve("e1/c", "fp3", "pod-restart", "shop", True) is Refusal.RATE_LIMIT
    # A rate-limited alert did not trigger, so it does not start a cooldown either.
    assert not isinstance(await limits.reserve("e1/c", "fp3", "pod-restart", "other-ns", True), Refusal), "per namespace"
    await first.release()
    await first.release()  # releasing twice gives back one token only
    assert not isinstance(await limits.reserve("e1/a", "fp1", "pod-restart", "shop", True), Refusal)
    assert await limits.reserve("e1/d", "fp4", "pod-restart", "shop", True) is Refusal.RATE_LIMIT


async def test_a_committed_event_is_a_duplicate_and_the_storm_cap_counts_only_active_functions() -> None:
    clock = FakeClock()
    limits = memory_limits(clock, cooldown_s=0, burst=100, per_minute=100, storm_per_minute=2)
    claim = await limits.reserve("e1/a", "fp1", "pod-restart", "shop", True)
    assert not isinstance(claim, Refusal)
    assert await limits.check("e1/a", "fp1") is Refusal.DUPLICATE, "in progress: a concurrent copy waits for nothing"
    await claim.commit()
    assert await limits.check("e1/a", "fp1") is Refusal.DUPLICATE
    assert await limits.check("e2/a", "fp1") is None, "no cooldown: a new event of the alert may trigger"
    assert not isinstance(await limits.reserve("e1/b", "fp2", "pod-restart", "shop", True), Refusal)
    assert await limits.reserve("e1/c", "fp3", "pod-restart", "shop", True) is Refusal.STORM
    assert not isinstance(await limits.reserve("e1/c", "fp3", "escalate", "shop", False), Refusal)
    assert await limits.claim_storm_escalation() and not await limits.claim_storm_escalation()
    await limits.release_storm_escalation()
    assert await limits.claim_storm_escalation()
    clock.now += 30  # half a minute refills one of the two storm tokens
    assert not isinstance(await limits.reserve("e1/d", "fp4", "pod-restart", "shop", True), Refusal)


def test_the_cooldown_forgets_expired_keys_as_it_goes() -> None:
    clock = FakeClock()
    cooldown = Cooldown(seconds=60, clock=clock)
    for n in range(1000):
        assert cooldown.reserve(f"alert-{n}")
        clock.now += 0.1  # the first keys expire while the last ones are still cooling
    assert not cooldown.reserve("alert-999") and cooldown.cooling("alert-500")
    assert len(cooldown) == 600  # 100 s of reservations, 60 s of them still in force
    assert cooldown.reserve("alert-0")  # expired: it may trigger again
