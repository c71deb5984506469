"""Rate limits and loop prevention, on a fake clock: no sleeping."""

from __future__ import annotations

from agent_sre.worker.limits import Cooldown, Limits, Reservation, TokenBucket, TtlSet


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


def test_limits_suppress_by_cooldown_then_by_rate_and_a_release_restores_both() -> None:
    clock = FakeClock()
    limits = Limits.from_settings(cooldown_s=600, burst=2, per_minute=1, clock=clock)
    first = limits.reserve("fp1", "pod-restart", "shop")
    assert isinstance(first, Reservation)
    assert limits.reserve("fp1", "pod-restart", "shop") == "cooldown"
    assert isinstance(limits.reserve("fp2", "pod-restart", "shop"), Reservation)
    assert limits.reserve("fp3", "pod-restart", "shop") == "rate_limit"
    # A rate-limited alert did not trigger, so it does not start a cooldown either.
    assert isinstance(limits.reserve("fp3", "pod-restart", "other-ns"), Reservation), "buckets are per namespace"
    first.release()
    first.release()  # releasing twice gives back one token only
    assert isinstance(limits.reserve("fp1", "pod-restart", "shop"), Reservation)
    assert limits.reserve("fp4", "pod-restart", "shop") == "rate_limit"


def test_the_cooldown_forgets_expired_keys_as_it_goes() -> None:
    clock = FakeClock()
    cooldown = Cooldown(seconds=60, clock=clock)
    for n in range(1000):
        assert cooldown.reserve(f"alert-{n}")
        clock.now += 0.1  # the first keys expire while the last ones are still cooling
    assert not cooldown.reserve("alert-999") and cooldown.cooling("alert-500")
    assert len(cooldown) == 600  # 100 s of reservations, 60 s of them still in force
    assert cooldown.reserve("alert-0")  # expired: it may trigger again
