"""At most one run per trigger: a redelivered or replayed trigger finds its claim and does nothing.

The key is the trigger's correlation id and function (one alert occurrence, one function), so a
trigger published again under a new event id is caught too. The claim is taken before the
function acts and kept for AGENT_SRE_FUNCTIONS_IDEMPOTENCY_TTL_S (10 minutes, the worker's default
cooldown): redeliveries and replays within it do nothing, a trigger older than it is refused by the
runner, and the worker's next attempt at an alert that still fires (after its cooldown) acts. A
process killed mid-run leaves its claim: the redelivery is not acted on (at most once), and the
worker's outcome tracking sees no result and escalates when the alert keeps firing.

`MemoryLedger` holds claims for one process; `RedisLedger` for every replica (AGENT_SRE_REDIS_URL).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..errors import TransientError


class Ledger(Protocol):
    async def claim(self, key: str) -> bool:
        """True for the first caller of `key` within the TTL, False for every later one."""

    async def finish(self, key: str, status: str) -> None:
        """Record how the claimed run ended (kept for the rest of the TTL)."""

    async def state(self, key: str) -> str | None:
        """What `finish` recorded (or `running`); None when nothing is claimed."""

    async def close(self) -> None: ...


def run_key(correlation_id: str, function: str) -> str:
    return f"{function}/{correlation_id}"


class MemoryLedger:
    def __init__(self, ttl_s: float, max_items: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.max_items = max_items
        self._runs: OrderedDict[str, tuple[float, str]] = OrderedDict()

    async def claim(self, key: str) -> bool:
        now = time.monotonic()
        found = self._runs.get(key)
        if found is not None and now - found[0] < self.ttl_s:
            return False
        self._runs[key] = (now, "running")
        self._runs.move_to_end(key)
        while len(self._runs) > self.max_items:
            self._runs.popitem(last=False)
        return True

    async def finish(self, key: str, status: str) -> None:
        if key in self._runs:
            self._runs[key] = (self._runs[key][0], status)

    async def state(self, key: str) -> str | None:
        found = self._runs.get(key)
        return found[1] if found is not None and time.monotonic() - found[0] < self.ttl_s else None

    async def close(self) -> None:
        return None


class RedisLedger:
    """`{prefix}:function-run:<function>/<correlation id>` = running | <status>, SET NX with the TTL."""

    def __init__(self, redis: Redis, *, prefix: str, ttl_s: float) -> None:
        self.redis = redis
        self.prefix = "{" + prefix + "}"
        self.ttl_ms = int(ttl_s * 1000)

    async def claim(self, key: str) -> bool:
        try:
            return bool(await self.redis.set(self._key(key), "running", nx=True, px=self.ttl_ms))
        except RedisError as exc:
            raise TransientError(f"Redis: cannot claim the run: {exc}") from exc

    async def finish(self, key: str, status: str) -> None:
        try:
            await self.redis.set(self._key(key), status, xx=True, keepttl=True)
        except RedisError as exc:
            raise TransientError(f"Redis: cannot record the run: {exc}") from exc

    async def state(self, key: str) -> str | None:
        try:
            found = await self.redis.get(self._key(key))
        except RedisError as exc:
            raise TransientError(f"Redis: cannot read the run: {exc}") from exc
        return found.decode() if isinstance(found, bytes) else found

    async def close(self) -> None:
        await self.redis.aclose()

    def _key(self, key: str) -> str:
        return f"{self.prefix}:function-run:{key}"
