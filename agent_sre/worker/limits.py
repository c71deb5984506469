"""What an alert must get past before its trigger is published: deduplication, its cooldown, a
token bucket per (function, namespace) and the storm caps.

Two backends behave the same: `MemoryLimits`, this process's memory (one replica), and
`agent_sre.worker.shared.RedisLimits`, Redis (any number of replicas). Each hands out a `Claim`
before the publish: `commit` once the broker confirmed the trigger, `release` when it was not
published, so a retried message is never suppressed by its own earlier attempt.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..settings import Settings

Clock = Callable[[], float]


class Refusal(str, Enum):
    """Why an alert's trigger is not published now."""

    DUPLICATE = "duplicate"  # this event's alert was already published (a redelivery, an HA copy)
    COOLDOWN = "cooldown"  # the alert triggered within its cooldown
    BUSY = "busy"  # another replica is publishing it right now: look again shortly
    RATE_LIMIT = "rate_limit"  # this function in this namespace has no token left
    STORM = "storm"  # past the cap on active remediations per minute (or per message)


class Claim(Protocol):
    def commit(self) -> Awaitable[None]:
        """The trigger was confirmed: start the cooldown and remember the event. Await it. Sent
        when called (Redis), so that what is recorded beside it can share its round trip."""

    async def release(self) -> None:
        """The trigger was not published: give everything back (idempotent)."""


class Limits(Protocol):
    async def check(self, event_key: str, fingerprint: str) -> Refusal | None:
        """Before the selectors run: a repeat or a redelivery then costs no model time."""

    async def reserve(self, event_key: str, fingerprint: str, function: str, namespace: str, active: bool) -> Claim | Refusal:
        """A claim, or why not. `active`: the function changes something, so its token bucket and
        the storm cap apply. An escalation is no action: rate-limiting it would drop the very
        alerts a human must see; the alert's cooldown still keeps it to one per alert."""

    async def claim_storm_escalation(self) -> bool:
        """True for the one caller, fleet-wide, that escalates the current storm."""

    async def release_storm_escalation(self) -> None:
        """That escalation was not published: the next alert refused for the storm tries again."""

    async def close(self) -> None: ...


class TokenBucket:
    """`burst` tokens per key, refilled continuously at `per_minute`."""

    def __init__(self, burst: int, per_minute: float, clock: Clock = time.monotonic, max_keys: int = 10_000) -> None:
        self.burst = float(burst)
        self.per_second = per_minute / 60.0
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: Hashable) -> bool:
        tokens = self._tokens(key)
        if tokens < 1.0:
            return False
        self._store(key, tokens - 1.0)
        return True

    def give_back(self, key: Hashable) -> None:
        self._store(key, min(self.burst, self._tokens(key) + 1.0))

    def _tokens(self, key: Hashable) -> float:
        now = self.clock()
        tokens, at = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.per_second)

    def _store(self, key: Hashable, tokens: float) -> None:
        self._buckets[key] = (tokens, self.clock())
        self._buckets.move_to_end(key)
        # A forgotten key comes back full, which is what an idle key would have refilled to anyway.
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)


class Cooldown:
    """At most one reservation per key within `seconds`. Every key gets the same span, so keys are
    kept in expiry order and the expired ones leave from the front: O(1) per call, however many
    fingerprints are cooling."""

    def __init__(self, seconds: float, clock: Clock = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._until: OrderedDict[Hashable, float] = OrderedDict()

    def reserve(self, key: Hashable) -> bool:
        if self.cooling(key):
            return False
        self._until[key] = self.clock() + self.seconds
        return True

    def cooling(self, key: Hashable) -> bool:
        """Whether a reservation for `key` is still in force."""
        now = self.clock()
        while self._until and next(iter(self._until.values())) <= now:
            self._until.popitem(last=False)
        return key in self._until

    def release(self, key: Hashable) -> None:
        self._until.pop(key, None)

    def __len__(self) -> int:
        return len(self._until)


class TtlSet:
    """Remembers keys for `ttl_s`, at most `max_items` of them (the oldest are forgotten first)."""

    def __init__(self, ttl_s: float, clock: Clock = time.monotonic, max_items: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self.max_items = max_items
        self._expiry: OrderedDict[Hashable, float] = OrderedDict()

    def add(self, key: Hashable) -> None:
        self._expire()
        self._expiry.pop(key, None)
        self._expiry[key] = self.clock() + self.ttl_s
        while len(self._expiry) > self.max_items:
            self._expiry.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        expiry = self._expiry.get(key)  # type: ignore[call-overload]
        return expiry is not None and expiry > self.clock()

    def __len__(self) -> int:
        self._expire()
        return len(self._expiry)

    def _expire(self) -> None:
        now = self.clock()
        # Insertion order is expiry order, since every key gets the same TTL.
        while self._expiry and next(iter(self._expiry.values())) <= now:
            self._expiry.popitem(last=False)


@dataclass(frozen=True)
class LimitSettings:
    """What both backends enforce (AGENT_SRE_COOLDOWN_S, _RATE_LIMIT_*, _STORM_*, _DEDUP_TTL_S)."""

    cooldown_s: float
    burst: int
    per_minute: float
    storm_per_minute: int
    storm_window_s: float
    dedup_ttl_s: float

    @classmethod
    def of(cls, settings: Settings) -> LimitSettings:
        return cls(
            cooldown_s=settings.cooldown_s,
            burst=settings.rate_limit_burst,
            per_minute=settings.rate_limit_per_minute,
            storm_per_minute=settings.storm_per_minute,
            storm_window_s=settings.storm_window_s,
            dedup_ttl_s=settings.dedup_ttl_s,
        )


class MemoryLimits:
    """Every limit in this process's memory: right for one replica; each replica keeps its own."""

    def __init__(self, limits: LimitSettings, clock: Clock = time.monotonic) -> None:
        self.cooldown = Cooldown(limits.cooldown_s, clock)
        self.bucket = TokenBucket(limits.burst, limits.per_minute, clock)
        self.storm = TokenBucket(limits.storm_per_minute, limits.storm_per_minute, clock, max_keys=1)
        self.published = TtlSet(limits.dedup_ttl_s, clock)
        self._storm_escalated = Cooldown(limits.storm_window_s, clock)
        self._in_progress: set[str] = set()

    async def check(self, event_key: str, fingerprint: str) -> Refusal | None:
        if event_key in self.published or event_key in self._in_progress:
            return Refusal.DUPLICATE
        if self.cooldown.cooling(fingerprint):
            return Refusal.COOLDOWN
        return None

    async def reserve(self, event_key: str, fingerprint: str, function: str, namespace: str, active: bool) -> Claim | Refusal:
        if refusal := await self.check(event_key, fingerprint):
            return refusal
        key = (function, namespace)
        if active and not self.bucket.take(key):
            return Refusal.RATE_LIMIT
        if active and not self.storm.take("*"):
            self.bucket.give_back(key)
            return Refusal.STORM
        self.cooldown.reserve(fingerprint)
        self._in_progress.add(event_key)
        return _MemoryClaim(self, event_key, fingerprint, key, active)

    async def claim_storm_escalation(self) -> bool:
        return self._storm_escalated.reserve("storm")

    async def release_storm_escalation(self) -> None:
        self._storm_escalated.release("storm")

    async def close(self) -> None:
        pass


class _MemoryClaim:
    def __init__(self, limits: MemoryLimits, event_key: str, fingerprint: str, key: tuple[str, str], active: bool) -> None:
        self.limits, self.event_key, self.fingerprint, self.key, self.active = limits, event_key, fingerprint, key, active
        self.settled = False

    async def commit(self) -> None:
        if not self.settled:
            self.settled = True
            self.limits._in_progress.discard(self.event_key)
            self.limits.published.add(self.event_key)

    async def release(self) -> None:
        if not self.settled:
            self.settled = True
            limits = self.limits
            limits._in_progress.discard(self.event_key)
            limits.cooldown.release(self.fingerprint)
            if self.active:
                limits.bucket.give_back(self.key)
                limits.storm.give_back("*")
