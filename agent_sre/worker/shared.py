"""The limits in Redis, shared by every replica (AGENT_SRE_REDIS_URL).

Keys, all under one hash tag so a Redis Cluster keeps them in one slot (the scripts touch several):
- `{p}:event:<event id/correlation id>`: the published set (value `done`, for the dedup TTL);
- `{p}:cool:<fingerprint>`: the cooldown (value `done`, for the cooldown);
- `{p}:bucket:<function>/<namespace>` and `{p}:storm`: token buckets (hash of tokens and time);
- `{p}:storm-escalated`: who escalates the current storm.

While a replica publishes, the event and cooldown keys hold its claim, `claim:<replica>:<n>`, for
at most `claim_ttl_s`. Another replica that meets the claim is told `busy` and looks again later;
a replica killed mid-publish holds nothing once its claims expire, so no alert is lost to it.
Every check and reservation is one Lua script: atomic, whatever the number of replicas.

When Redis cannot be reached every call raises TransientError: the message takes the retry path,
and nothing acts without its claim.
"""

from __future__ import annotations

import itertools
import os
import socket
import uuid
from collections.abc import Awaitable

from .limits import Claim, LimitSettings, Refusal
from .redis_client import Batch, connect, redis_call

# KEYS: event, cool, bucket, storm. ARGV: claim, steal, claim ms, cooldown on, burst, tokens per ms,
# bucket ttl ms, active, storm burst, storm tokens per ms, storm ttl ms, reserve (0: only look).
# Returns "ok", a refusal's value, or "held:<which>:<claim>" when a claim stands in the way.
_RESERVE = """
local function held(key, which)
  local value = redis.call('GET', key)
  if not value or value == ARGV[2] then return nil end
  if value == 'done' then return which == 'event' and 'duplicate' or 'cooldown' end
  return 'held:' .. which .. ':' .. value
end
local found = held(KEYS[1], 'event')
if found then return found end
if ARGV[4] == '1' then
  found = held(KEYS[2], 'cool')
  if found then return found end
end
if ARGV[12] == '0' then return 'ok' end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function tokens(key, burst, rate)
  local state = redis.call('HMGET', key, 'tokens', 'at')
  if not state[1] then return burst end
  return math.min(burst, tonumber(state[1]) + (now - tonumber(state[2])) * rate)
end
if ARGV[8] == '1' then  -- an active function: its bucket and the storm cap (escalate takes neither)
  local bucket = tokens(KEYS[3], tonumber(ARGV[5]), tonumber(ARGV[6]))
  if bucket < 1 then return 'rate_limit' end
  local storm = tokens(KEYS[4], tonumber(ARGV[9]), tonumber(ARGV[10]))
  if storm < 1 then return 'storm' end
  redis.call('HSET', KEYS[3], 'tokens', bucket - 1, 'at', now)
  redis.call('PEXPIRE', KEYS[3], ARGV[7])
  redis.call('HSET', KEYS[4], 'tokens', storm - 1, 'at', now)
  redis.call('PEXPIRE', KEYS[4], ARGV[11])
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
if ARGV[4] == '1' then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3]) end
return 'ok'
"""

# KEYS: event, cool, bucket, storm. ARGV: claim, burst, tokens per ms, active, storm burst, storm
# tokens per ms. Only a key that still holds this claim is freed; an active claim's tokens go back, capped.
_RELEASE = """
for i = 1, 2 do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function give_back(key, burst, rate)
  local state = redis.call('HMGET', key, 'tokens', 'at')
  if not state[1] then return end
  local tokens = math.min(burst, tonumber(state[1]) + (now - tonumber(state[2])) * rate + 1)
  redis.call('HSET', key, 'tokens', tokens, 'at', now)
end
if ARGV[4] == '1' then
  give_back(KEYS[3], tonumber(ARGV[2]), tonumber(ARGV[3]))
  give_back(KEYS[4], tonumber(ARGV[5]), tonumber(ARGV[6]))
end
return 1
"""

# KEYS: event, cool. ARGV: dedup ms, cooldown ms (0: none). The trigger went out: both are `done`.
_COMMIT = """
redis.call('SET', KEYS[1], 'done', 'PX', ARGV[1])
if ARGV[2] ~= '0' then redis.call('SET', KEYS[2], 'done', 'PX', ARGV[2]) end
return 1
"""

# KEYS: key. ARGV: value. Deletes the key only if it still holds the value.
_DELETE_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLimits:
    """The limits on `batch` (`agent_sre.worker.redis_client`), which they close with them."""

    def __init__(self, batch: Batch, limits: LimitSettings, *, prefix: str, claim_ttl_s: float) -> None:
        self.batch = batch
        self.client = batch.client
        self.timeout_s = batch.timeout_s
        self.prefix = "{" + prefix + "}"
        self.cooldown_ms = int(limits.cooldown_s * 1000)
        self.burst, self.rate = limits.burst, limits.per_minute / 60_000.0
        self.storm_burst, self.storm_rate = limits.storm_per_minute, limits.storm_per_minute / 60_000.0
        self.storm_window_ms = int(limits.storm_window_s * 1000)
        self.dedup_ms = int(limits.dedup_ttl_s * 1000)
        self.claim_ms = int(claim_ttl_s * 1000)
        # A replica's claims name it; `_held` are those this process is publishing right now.
        self.replica = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._claims = itertools.count()
        self._held: set[str] = set()
        self._reserve = self.batch.script(_RESERVE)
        self._release = self.batch.script(_RELEASE)
        self._commit = self.batch.script(_COMMIT)
        self._delete_if = self.batch.script(_DELETE_IF)

    @classmethod
    def from_url(cls, url: str, timeout_s: float, limits: LimitSettings, *, prefix: str, claim_ttl_s: float) -> RedisLimits:
        return cls(connect(url, timeout_s), limits, prefix=prefix, claim_ttl_s=claim_ttl_s)

    async def ping(self) -> None:
        """Fail at start-up, with the reason, rather than on the first alert."""
        await self._call(self.client.ping())

    async def check(self, event_key: str, fingerprint: str) -> Refusal | None:
        return await self._run(event_key, fingerprint, "", "", False, reserve=False)

    async def reserve(self, event_key: str, fingerprint: str, function: str, namespace: str, active: bool) -> Claim | Refusal:
        claim = f"claim:{self.replica}:{next(self._claims)}"
        answer = await self._run(event_key, fingerprint, function, namespace, active, reserve=True, claim=claim)
        if isinstance(answer, Refusal):
            return answer
        self._held.add(claim)
        return _RedisClaim(self, claim, self._keys(event_key, fingerprint, function, namespace), active)

    async def claim_storm_escalation(self) -> bool:
        key = f"{self.prefix}:storm-escalated"
        return bool(await self._call(self.client.set(key, self.replica, nx=True, px=self.storm_window_ms)))

    async def release_storm_escalation(self) -> None:
        await self._delete_if([f"{self.prefix}:storm-escalated"], [self.replica])

    async def close(self) -> None:
        await self.batch.close()

    async def _run(
        self, event_key: str, fingerprint: str, function: str, namespace: str, active: bool, *, reserve: bool, claim: str = ""
    ) -> Refusal | None:
        keys = self._keys(event_key, fingerprint, function, namespace)
        steal = ""
        for _ in range(2):
            answer = await self._reserve(keys, [
                claim, steal, self.claim_ms, int(self.cooldown_ms > 0),
                self.burst, self.rate, self._refill_ms(self.burst, self.rate), int(active),
                self.storm_burst, self.storm_rate, self._refill_ms(self.storm_burst, self.storm_rate), int(reserve),
            ])
            if answer == "ok":
                return None
            if not answer.startswith("held:"):
                return Refusal(answer)
            _, which, holder = answer.split(":", 2)
            if holder in self._held:
                # This process is publishing it: the same answer one replica alone would give.
                return Refusal.DUPLICATE if which == "event" else Refusal.COOLDOWN
            if not holder.startswith(f"claim:{self.replica}:"):
                return Refusal.BUSY
            # Our own claim that a failed release left behind: nobody is publishing it, take it.
            steal = holder
        return Refusal.BUSY

    def _keys(self, event_key: str, fingerprint: str, function: str, namespace: str) -> list[str]:
        p = self.prefix
        return [f"{p}:event:{event_key}", f"{p}:cool:{fingerprint}", f"{p}:bucket:{function}/{namespace}", f"{p}:storm"]

    @staticmethod
    def _refill_ms(burst: float, rate: float) -> int:
        """How long an idle bucket takes to refill; a bucket key left that long is dropped (= full)."""
        return int(burst / rate) + 60_000

    async def _call(self, awaitable):  # type: ignore[no-untyped-def]
        return await redis_call(awaitable, self.timeout_s)


class _RedisClaim:
    def __init__(self, limits: RedisLimits, claim: str, keys: list[str], active: bool) -> None:
        self.limits, self.claim, self.keys, self.active = limits, claim, keys, active
        self.settled = False

    def commit(self) -> Awaitable[None]:
        answer = None
        if not self.settled:
            self.settled = True
            limits = self.limits
            answer = limits._commit(self.keys[:2], [limits.dedup_ms, limits.cooldown_ms])
        return self._let_go(answer)

    async def release(self) -> None:
        if self.settled:
            return
        self.settled = True
        limits = self.limits
        await self._let_go(limits._release(self.keys, [
            self.claim, limits.burst, limits.rate, int(self.active), limits.storm_burst, limits.storm_rate,
        ]))

    async def _let_go(self, answer: Awaitable[object] | None) -> None:
        """Wait for the commit or release; then this process holds the claim no more, either way:
        a claim that a failed release left behind is ours to take."""
        try:
            if answer is not None:
                await answer
        finally:
            self.limits._held.discard(self.claim)
