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

import asyncio
import hashlib
import itertools
import os
import socket
import uuid
from collections.abc import Awaitable

import redis.asyncio as aioredis
from hiredis import pack_command
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError, RedisError, ResponseError

from ..errors import TransientError
from .limits import Claim, LimitSettings, Refusal

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
    def __init__(
        self, client: aioredis.Redis, limits: LimitSettings, *, prefix: str, claim_ttl_s: float, timeout_s: float
    ) -> None:
        self.client = client
        self.timeout_s = timeout_s
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
        self.batch = Batch(client, timeout_s)
        self._reserve = self.batch.script(_RESERVE)
        self._release = self.batch.script(_RELEASE)
        self._commit = self.batch.script(_COMMIT)
        self._delete_if = self.batch.script(_DELETE_IF)

    @classmethod
    def from_url(cls, url: str, timeout_s: float, limits: LimitSettings, *, prefix: str, claim_ttl_s: float) -> RedisLimits:
        # No socket_timeout: redis-py would wrap every send in asyncio.wait_for, a task per call.
        # Each call is bounded by `timeout_s` here instead (`Batch`, `redis_call`).
        client = aioredis.Redis.from_url(
            url, decode_responses=True, socket_timeout=None, socket_connect_timeout=timeout_s
        )
        return cls(client, limits, prefix=prefix, claim_ttl_s=claim_ttl_s, timeout_s=timeout_s)

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
        await self.client.aclose()

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


async def redis_call(awaitable, timeout_s: float | None = None):  # type: ignore[no-untyped-def]
    """Await a Redis call, for at most `timeout_s`; Redis unreachable, failing or silent is a
    TransientError: nothing acts without it."""
    try:
        async with asyncio.timeout(timeout_s):
            return await awaitable
    except (RedisError, OSError) as exc:  # a timeout is an OSError too
        raise unavailable(exc) from exc


def unavailable(exc: BaseException) -> TransientError:
    """What any failed Redis call raises: worth retrying, and nothing acts meanwhile."""
    return TransientError(f"shared state (Redis) unavailable: {type(exc).__name__}: {exc}")


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


# One queued script call: the script, its EVALSHA command packed, and its answer's future.
_Call = tuple["_Script", bytes, asyncio.Future[object]]


class Batch:
    """Script calls made while a batch is on its way go to Redis together, in one pipeline: one
    round trip and one write for many alerts. Under load that cuts the client's cost per call by
    more than half (redis-py's per-command overhead, not Redis, is what costs here); alone, a call
    goes at once, as it would unbatched.

    Each round trip is bounded by `timeout_s`; a call fails with TransientError when Redis is
    unreachable, silent or answers with an error."""

    def __init__(self, client: aioredis.Redis, timeout_s: float | None = None) -> None:
        self.client = client
        self.timeout_s = timeout_s  # for each round trip: a Redis that stops answering fails the batch
        self._queue: list[_Call] = []
        self._sender: asyncio.Task[None] | None = None
        self._connection: AbstractConnection | None = None  # held by the sender, one batch at a time

    def script(self, source: str) -> _Script:
        return _Script(self, source)

    def call(self, script: _Script, keys: list[str], args: list[object]) -> asyncio.Future[object]:
        """Queue the call now (it goes with the next batch) and return its answer's future. An
        argument Redis cannot take (not str, bytes, int or float) raises TypeError here."""
        command = pack_command((b"EVALSHA", script.sha, len(keys), *keys, *args))
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._queue.append((script, command, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.ensure_future(self._send_all())
        return future

    async def _send_all(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                results = await self._send(batch)
            except BaseException as exc:  # every caller gets the failure; none waits forever
                failure = unavailable(exc if isinstance(exc, Exception) else ConnectionError("cancelled"))
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(failure)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (*_, future), result in zip(batch, results):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(unavailable(result))
                else:
                    future.set_result(result)

    async def _send(self, batch: list[_Call]) -> list[object]:
        async with asyncio.timeout(self.timeout_s):
            return await self._send_once(batch)

    async def _send_once(self, batch: list[_Call]) -> list[object]:
        results = await self._pipeline(batch)
        if any(isinstance(r, NoScriptError) for r in results):
            # Redis restarted (or its scripts were flushed): load them, then send what failed again.
            for script in {id(s): s for s, *_ in batch}.values():
                await self.client.script_load(script.source)
            retry = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            for i, result in zip(retry, await self._pipeline([batch[i] for i in retry])):
                results[i] = result
        return results

    async def _pipeline(self, batch: list[_Call]) -> list[object]:
        """One write of every call, then their answers in order. Written here, packed by hiredis
        (in C) when queued, not by redis-py's pipeline: its generic packing was most of the
        client's cost per alert."""
        if self._connection is None:
            self._connection = await self.client.connection_pool.get_connection()
        connection = self._connection
        payload = b"".join(command for _, command, _ in batch)
        results: list[object] = []
        try:
            await connection.send_packed_command(payload, check_health=False)
            for _ in batch:
                try:
                    results.append(await connection.read_response())
                except ResponseError as exc:  # this call's error; the others' answers follow
                    results.append(exc)
        except BaseException:
            # Answers not read would be taken for the next batch's: start that one on a new socket.
            await connection.disconnect(nowait=True)
            raise
        return results

    async def close(self) -> None:
        if self._connection is not None:
            await self.client.connection_pool.release(self._connection)
            self._connection = None


class _Script:
    def __init__(self, batch: Batch, source: str) -> None:
        self.batch, self.source = batch, source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, keys: list[str], args: list[object]) -> asyncio.Future[object]:
        return self.batch.call(self, keys, args)
