"""What became of each remediation: the alert resolved, kept firing, or its function reported.

A published trigger (an active function, acting) leaves a `Remediation` under its alert's
fingerprint until the alert resolves or `AGENT_SRE_OUTCOME_TTL_S` passes. It counts the
remediations of that fingerprint that did not resolve it; after `AGENT_SRE_MAX_ATTEMPTS_PER_ALERT`
of them, or once a function reported `failed`, the alert's next decision is `escalate`.

Outcomes, each recorded once per trigger:
- `resolved`: the fingerprint resolved (with the seconds it took);
- `not_resolved`: it still fires after its cooldown, or fires again;
- `succeeded` / `failed`: the function's own `io.homelab.agent-sre.lambda.result` event.

Two backends behave the same: `MemoryOutcomes` (one replica) and `RedisOutcomes`, which shares
them with every replica through the limits' Redis.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from enum import Enum
from typing import Literal, Protocol

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InputError
from .limits import Clock
from .shared import redis_call


class Outcome(str, Enum):
    RESOLVED = "resolved"
    NOT_RESOLVED = "not_resolved"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class LambdaResult(BaseModel):
    """The data of a function's `io.homelab.agent-sre.lambda.result` event."""

    model_config = ConfigDict(extra="ignore")

    correlation_id: str = Field(min_length=1, max_length=200)
    status: Literal["succeeded", "failed"]
    message: str = Field(default="", max_length=4000)


def parse_result(data: object) -> LambdaResult:
    try:
        return LambdaResult.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'data'}: {e['msg']}" for e in exc.errors())
        raise InputError("invalid_result", f"not a lambda result ({problems}); expected "
                         '{"correlation_id": "...", "status": "succeeded"|"failed", "message": "..."}') from exc


@dataclass(frozen=True)
class Remediation:
    trigger_id: str
    function: str
    correlation_id: str
    at: float  # Unix time the trigger was confirmed
    attempts: int  # remediations of this fingerprint without a resolution, this one included
    failed: bool = False  # its function reported failure
    judged: bool = False  # `not_resolved` is recorded for it already
    reported: bool = False  # its function's result is recorded already


class Outcomes(Protocol):
    async def triggered(self, fingerprint: str, correlation_id: str, trigger_id: str, function: str) -> None:
        """A trigger for this fingerprint was confirmed: one more attempt, and its outcome awaited."""

    async def last(self, fingerprint: str) -> Remediation | None:
        """The latest remediation of this fingerprint that has not resolved it."""

    async def judge_unresolved(self, fingerprint: str, trigger_id: str) -> bool:
        """Mark that trigger `not_resolved`; True the first time only (fleet-wide)."""

    async def resolved(self, fingerprint: str) -> Remediation | None:
        """The fingerprint resolved: its remediation, taken away (by one caller only), or None."""

    async def reported(self, correlation_id: str, failed: bool) -> Remediation | None:
        """A function's result for this alert occurrence; None when no trigger awaits one, or its
        result is recorded already."""

    async def close(self) -> None: ...


class MemoryOutcomes:
    """In this process's memory, for at most `max_items` fingerprints (the oldest are forgotten)."""

    def __init__(self, ttl_s: float, clock: Clock = time.time, max_items: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self.max_items = max_items
        self._by_fingerprint: OrderedDict[str, Remediation] = OrderedDict()
        self._fingerprint_of: dict[str, str] = {}  # correlation id -> fingerprint

    async def triggered(self, fingerprint: str, correlation_id: str, trigger_id: str, function: str) -> None:
        previous = await self.last(fingerprint)
        attempts = previous.attempts + 1 if previous else 1
        self._by_fingerprint.pop(fingerprint, None)
        self._by_fingerprint[fingerprint] = Remediation(trigger_id, function, correlation_id, self.clock(), attempts)
        self._fingerprint_of[correlation_id] = fingerprint
        while len(self._by_fingerprint) > self.max_items:
            _, dropped = self._by_fingerprint.popitem(last=False)
            self._fingerprint_of.pop(dropped.correlation_id, None)

    async def last(self, fingerprint: str) -> Remediation | None:
        remediation = self._by_fingerprint.get(fingerprint)
        if remediation is not None and self.clock() - remediation.at > self.ttl_s:
            self._forget(fingerprint)
            return None
        return remediation

    async def judge_unresolved(self, fingerprint: str, trigger_id: str) -> bool:
        remediation = await self.last(fingerprint)
        if remediation is None or remediation.trigger_id != trigger_id or remediation.judged:
            return False
        self._by_fingerprint[fingerprint] = replace(remediation, judged=True)
        return True

    async def resolved(self, fingerprint: str) -> Remediation | None:
        remediation = await self.last(fingerprint)
        if remediation is not None:
            self._forget(fingerprint)
        return remediation

    async def reported(self, correlation_id: str, failed: bool) -> Remediation | None:
        fingerprint = self._fingerprint_of.get(correlation_id)
        remediation = await self.last(fingerprint) if fingerprint else None
        if remediation is None or remediation.correlation_id != correlation_id or remediation.reported:
            return None
        self._by_fingerprint[fingerprint] = replace(remediation, reported=True, failed=failed)  # type: ignore[index]
        return remediation

    async def close(self) -> None:
        pass

    def _forget(self, fingerprint: str) -> None:
        remediation = self._by_fingerprint.pop(fingerprint, None)
        if remediation is not None:
            self._fingerprint_of.pop(remediation.correlation_id, None)


# KEYS: remediation hash, correlation key. ARGV: trigger id, function, correlation id, at, ttl ms.
_TRIGGERED = """
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'trigger_id', ARGV[1], 'function', ARGV[2], 'correlation_id', ARGV[3],
  'at', ARGV[4], 'failed', '0', 'judged', '0', 'reported', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('SET', KEYS[2], KEYS[1], 'PX', ARGV[5])
return attempts
"""

# KEYS: remediation hash. ARGV: field that must equal, its value, field to set once, extra field, its value.
# Returns 1 when this call set it, 0 when it was set already or the remediation is another one.
_SET_ONCE = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if redis.call('HGET', KEYS[1], ARGV[3]) ~= '0' then return 0 end
redis.call('HSET', KEYS[1], ARGV[3], '1')
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], ARGV[4], ARGV[5]) end
return 1
"""


class RedisOutcomes:
    """Outcomes in Redis, under the limits' `{prefix}` hash tag: `outcome:<fingerprint>` (a hash)
    and `outcome-of:<correlation id>` (its key), both for `ttl_s`."""

    def __init__(self, client: aioredis.Redis, *, prefix: str, ttl_s: float, clock: Clock = time.time) -> None:
        self.client = client
        self.prefix = "{" + prefix + "}"
        self.ttl_ms = int(ttl_s * 1000)
        self.clock = clock
        self._triggered = client.register_script(_TRIGGERED)
        self._set_once = client.register_script(_SET_ONCE)

    async def triggered(self, fingerprint: str, correlation_id: str, trigger_id: str, function: str) -> None:
        keys = [self._key(fingerprint), f"{self.prefix}:outcome-of:{correlation_id}"]
        await self._call(self._triggered(keys, [trigger_id, function, correlation_id, repr(self.clock()), self.ttl_ms]))

    async def last(self, fingerprint: str) -> Remediation | None:
        return _remediation(await self._call(self.client.hgetall(self._key(fingerprint))))

    async def judge_unresolved(self, fingerprint: str, trigger_id: str) -> bool:
        return bool(await self._call(self._set_once([self._key(fingerprint)], ["trigger_id", trigger_id, "judged", "", ""])))

    async def resolved(self, fingerprint: str) -> Remediation | None:
        key = self._key(fingerprint)
        async with self.client.pipeline(transaction=True) as pipe:  # read and delete as one: one caller gets it
            pipe.hgetall(key).delete(key)
            found, _ = await self._call(pipe.execute())
        remediation = _remediation(found)
        if remediation is not None:
            await self._call(self.client.delete(f"{self.prefix}:outcome-of:{remediation.correlation_id}"))
        return remediation

    async def reported(self, correlation_id: str, failed: bool) -> Remediation | None:
        key = await self._call(self.client.get(f"{self.prefix}:outcome-of:{correlation_id}"))
        if key is None:
            return None
        remediation = _remediation(await self._call(self.client.hgetall(key)))
        args = ["correlation_id", correlation_id, "reported", "failed", "1" if failed else "0"]
        if remediation is None or not await self._call(self._set_once([key], args)):
            return None
        return remediation

    async def close(self) -> None:
        pass  # the client is the limits', closed with them

    def _key(self, fingerprint: str) -> str:
        return f"{self.prefix}:outcome:{fingerprint}"

    async def _call(self, awaitable):  # type: ignore[no-untyped-def]
        return await redis_call(awaitable)


def _remediation(fields: dict[str, str] | None) -> Remediation | None:
    if not fields or "trigger_id" not in fields:
        return None
    return Remediation(
        trigger_id=fields["trigger_id"],
        function=fields["function"],
        correlation_id=fields["correlation_id"],
        at=float(fields["at"]),
        attempts=int(fields["attempts"]),
        failed=fields.get("failed") == "1",
        judged=fields.get("judged") == "1",
        reported=fields.get("reported") == "1",
    )
