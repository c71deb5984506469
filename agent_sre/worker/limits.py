"""Rate limits and loop prevention, kept in this process (each replica has its own state).

Every check is a reservation: the caller takes it before publishing and gives it back when the
publish fails, so a retried message is never suppressed by its own earlier attempt.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

Clock = Callable[[], float]


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


@dataclass
class Reservation:
    """What one alert holds while its trigger is being published."""

    limits: Limits
    fingerprint: str
    bucket_key: tuple[str, str]
    released: bool = field(default=False)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.limits.cooldown.release(self.fingerprint)
            self.limits.bucket.give_back(self.bucket_key)


class Limits:
    """Cooldown per alert fingerprint, then a token bucket per (function, namespace)."""

    def __init__(self, cooldown: Cooldown, bucket: TokenBucket) -> None:
        self.cooldown = cooldown
        self.bucket = bucket

    @classmethod
    def from_settings(cls, cooldown_s: float, burst: int, per_minute: float, clock: Clock = time.monotonic) -> Limits:
        return cls(Cooldown(cooldown_s, clock), TokenBucket(burst, per_minute, clock))

    def cooling(self, fingerprint: str) -> bool:
        """Whether this alert triggered (or is being triggered) within the cooldown: a repeat then
        costs no selector's time."""
        return self.cooldown.cooling(fingerprint)

    def reserve(self, fingerprint: str, function: str, namespace: str) -> Reservation | str:
        """A reservation, or the suppression reason: `cooldown` or `rate_limit`."""
        if not self.cooldown.reserve(fingerprint):
            return "cooldown"
        key = (function, namespace)
        if not self.bucket.take(key):
            # Not triggered, so a later repeat of this alert deserves its own chance.
            self.cooldown.release(fingerprint)
            return "rate_limit"
        return Reservation(self, fingerprint, key)
