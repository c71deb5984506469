"""What became of each remediation: the alert resolved, kept firing, or its function reported.

A published trigger (an active function, acting) leaves a `Remediation` under its alert's
fingerprint until the alert resolves or `AGENT_SRE_OUTCOME_TTL_S` passes. It counts the
remediations of that fingerprint that did not resolve it; after `AGENT_SRE_MAX_ATTEMPTS_PER_ALERT`
of them, or once a function reported `failed`, the alert's next decision is `escalate`.

Outcomes, each recorded once per trigger:
- `resolved`: the fingerprint resolved (with the seconds it took);
- `not_resolved`: it still fires after its cooldown, or fires again;
- `succeeded` / `failed` / `skipped`: the function's own `io.homelab.agent-sre.lambda.result` event
  (`skipped`: it found nothing to do, e.g. the pod was replaced already; not a failure).

An `escalate` trigger is no remediation: it counts no attempt and leaves the fingerprint's last
remediation in place (an alert escalated after a failure stays escalated), but its result is
awaited all the same, under its correlation id apart from the remediations', so that a failed
notification is heard of.

Two backends behave the same: `MemoryOutcomes` (one replica) and `RedisOutcomes`, which shares
them with every replica through the limits' Redis.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from ..schemas.catalog import ESCALATE
from ..schemas.cloudevent import event_data
from .limits import Clock
from .redis_client import Batch


class LambdaResult(BaseModel):
    """The data of a function's `io.homelab.agent-sre.lambda.result` event."""

    model_config = ConfigDict(extra="ignore")

    correlation_id: str = Field(min_length=1, max_length=200)
    status: Literal["succeeded", "failed", "skipped"]
    message: str = Field(default="", max_length=4000)
    function: str = Field(default="", max_length=200)  # which trigger ran: `escalate`'s awaits apart


def parse_result(data: object) -> LambdaResult:
    return event_data(LambdaResult, data, reason="invalid_result", what="a lambda result",
                      expected='{"correlation_id": "...", "status": "succeeded"|"failed"|"skipped", "message": "..."}')


@dataclass(frozen=True)
class Remediation:
    trigger_id: str
    function: str
    correlation_id: str
    at: float  # Unix time the trigger was confirmed
    attempts: int  # remediations of this fingerprint without a resolution, this one included (0: an escalate)
    failed: bool = False  # its function reported failure
    judged: bool = False  # `not_resolved` is recorded for it already
    reported: bool = False  # its function's result is recorded already


class Outcomes(Protocol):
    clock: Clock  # what `Remediation.at` is measured with

    def triggered(self, fingerprint: str, correlation_id: str, trigger_id: str, function: str) -> Awaitable[object]:
        """A trigger for this fingerprint was confirmed: one more attempt, and its outcome awaited.
        Await it; sent when called (Redis), as `last` is."""

    def last(self, fingerprint: str) -> Awaitable[Remediation | None]:
        """The latest remediation of this fingerprint that has not resolved it. Await it. Sent
        when called (Redis), so that it can share a round trip with the limits' check."""

    async def judge_unresolved(self, fingerprint: str, trigger_id: str) -> bool:
        """Mark that trigger `not_resolved`; True the first time only (fleet-wide)."""

    async def resolved(self, fingerprint: str) -> Remediation | None:
        """The fingerprint resolved: its remediation, taken away (by one caller only), or None."""

    async def reported(self, correlation_id: str, failed: bool) -> Remediation | None:
        """A function's result for this alert occurrence; None when no trigger awaits one, or its
        result is recorded already."""

    def escalated(self, correlation_id: str, trigger_id: str) -> Awaitable[object]:
        """An escalate was published for this alert occurrence: its result awaited (no attempt
        counted). Await it; sent when called (Redis)."""

    async def escalation_reported(self, correlation_id: str) -> Remediation | None:
        """The escalate's result for this alert occurrence; None when none awaits one, or its
        result is recorded already."""


class MemoryOutcomes:
    """In this process's memory, for at most `max_items` fingerprints (the oldest are forgotten)."""

    def __init__(self, ttl_s: float, clock: Clock = time.time, max_items: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self.max_items = max_items
        self._by_fingerprint: OrderedDict[str, Remediation] = OrderedDict()
        self._fingerprint_of: dict[str, str] = {}  # correlation id -> fingerprint
        self._escalations: OrderedDict[str, Remediation] = OrderedDict()  # correlation id -> its escalate

    async def triggered(self, fingerprint: str, correlation_id: str, trigger_id: str, function: str) -> None:
        previous = await self.last(fingerprint)
        attempts = previous.attempts + 1 if previous else 1
        self._forget(fingerprint)  # with the earlier trigger's correlation id: a late result matches nothing
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

    async def escalated(self, correlation_id: str, trigger_id: str) -> None:
        self._escalations.pop(correlation_id, None)  # the newest last, for the oldest to go first
        self._escalations[correlation_id] = Remediation(trigger_id, ESCALATE, correlation_id, self.clock(), attempts=0)
        while len(self._escalations) > self.max_items:
            self._escalations.popitem(last=False)

    async def escalation_reported(self, correlation_id: str) -> Remediation | None:
        escalation = self._escalations.get(correlation_id)
        if escalation is None or escalation.reported or self.clock() - escalation.at > self.ttl_s:
            return None
        self._escalations[correlation_id] = replace(escalation, reported=True)
        return escalation

    def _forget(self, fingerprint: str) -> None:
        remediation = self._by_fingerprint.pop(fingerprint, None)
        if remediation is not None:
            self._fingerprint_of.pop(remediation.correlation_id, None)


# Every script below runs on the limits' batch (`redis_client.Batch`): pipelined with their calls, so an
# outcome costs a fraction of a round trip. KEYS[1] is always a key under the `{prefix}` hash tag;
# ARGV[1] names the other one (of the same slot) where a script needs it.

# KEYS: remediation hash. ARGV: correlation key, trigger id, function, correlation id, at, ttl ms.
_TRIGGERED = """
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'trigger_id', ARGV[2], 'function', ARGV[3], 'correlation_id', ARGV[4],
  'at', ARGV[5], 'failed', '0', 'judged', '0', 'reported', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('SET', ARGV[1], KEYS[1], 'PX', ARGV[6])
return 1
"""

_LAST = "return redis.call('HGETALL', KEYS[1])"

# KEYS: remediation hash. ARGV: trigger id. Marks it judged; 1 only for the call that did.
_JUDGE = """
if redis.call('HGET', KEYS[1], 'trigger_id') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'judged') ~= '0' then return 0 end
redis.call('HSET', KEYS[1], 'judged', '1')
return 1
"""

# KEYS: remediation hash. ARGV: correlation key prefix. Read and delete as one: one caller gets it.
_RESOLVED = """
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return fields end
redis.call('DEL', KEYS[1])
for i = 1, #fields, 2 do
  if fields[i] == 'correlation_id' then redis.call('DEL', ARGV[1] .. fields[i + 1]) end
end
return fields
"""

# KEYS: correlation key. ARGV: correlation id, failed (0/1). The remediation, for the first report only.
_REPORTED = """
local key = redis.call('GET', KEYS[1])
if not key then return {} end
if redis.call('HGET', key, 'correlation_id') ~= ARGV[1] then return {} end
if redis.call('HGET', key, 'reported') ~= '0' then return {} end
local fields = redis.call('HGETALL', key)
redis.call('HSET', key, 'reported', '1', 'failed', ARGV[2])
return fields
"""


# KEYS: escalation hash. ARGV: trigger id, function, correlation id, at, ttl ms.
_ESCALATED = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'trigger_id', ARGV[1], 'function', ARGV[2], 'correlation_id', ARGV[3],
  'at', ARGV[4], 'attempts', '0', 'reported', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""

# KEYS: escalation hash. The escalation, for the first report only.
_ESCALATION_REPORTED = """
if redis.call('HGET', KEYS[1], 'reported') ~= '0' then return {} end
redis.call('HSET', KEYS[1], 'reported', '1')
return redis.call('HGETALL', KEYS[1])
"""


class RedisOutcomes:
    """Outcomes in Redis, under the limits' `{prefix}` hash tag: `outcome:<fingerprint>` (a hash)
    and `outcome-of:<correlation id>` (its key), and `escalation:<correlation id>` (a hash), all
    for `ttl_s`. Each call is one script on the
    limits' batch; their client is closed with them."""

    def __init__(self, batch: Batch, *, prefix: str, ttl_s: float, clock: Clock = time.time) -> None:
        self.prefix = "{" + prefix + "}"
        self.ttl_ms = int(ttl_s * 1000)
        self.clock = clock
        self._triggered = batch.script(_TRIGGERED)
        self._last = batch.script(_LAST)
        self._judge = batch.script(_JUDGE)
        self._resolved = batch.script(_RESOLVED)
        self._reported = batch.script(_REPORTED)
        self._escalated = batch.script(_ESCALATED)
        self._escalation_reported = batch.script(_ESCALATION_REPORTED)

    def triggered(self, fingerprint: str, correlation_id: str, trigger_id: str, function: str) -> Awaitable[object]:
        args = [self._of(correlation_id), trigger_id, function, correlation_id, repr(self.clock()), self.ttl_ms]
        return self._triggered([self._key(fingerprint)], args)

    def last(self, fingerprint: str) -> Awaitable[Remediation | None]:
        return _parsed(self._last([self._key(fingerprint)], []))

    async def judge_unresolved(self, fingerprint: str, trigger_id: str) -> bool:
        return bool(await self._judge([self._key(fingerprint)], [trigger_id]))

    async def resolved(self, fingerprint: str) -> Remediation | None:
        return _remediation(await self._resolved([self._key(fingerprint)], [self._of("")]))

    async def reported(self, correlation_id: str, failed: bool) -> Remediation | None:
        found = await self._reported([self._of(correlation_id)], [correlation_id, int(failed)])
        return _remediation(found)

    def escalated(self, correlation_id: str, trigger_id: str) -> Awaitable[object]:
        args = [trigger_id, ESCALATE, correlation_id, repr(self.clock()), self.ttl_ms]
        return self._escalated([self._escalation(correlation_id)], args)

    async def escalation_reported(self, correlation_id: str) -> Remediation | None:
        return _remediation(await self._escalation_reported([self._escalation(correlation_id)], []))

    def _key(self, fingerprint: str) -> str:
        return f"{self.prefix}:outcome:{fingerprint}"

    def _escalation(self, correlation_id: str) -> str:
        return f"{self.prefix}:escalation:{correlation_id}"

    def _of(self, correlation_id: str) -> str:
        return f"{self.prefix}:outcome-of:{correlation_id}"


async def _parsed(answer: Awaitable[object]) -> Remediation | None:
    return _remediation(await answer)  # type: ignore[arg-type]


def _remediation(flat: list[str] | None) -> Remediation | None:
    """From a script's HGETALL answer: field, value, field, value, …"""
    fields = dict(zip(flat[::2], flat[1::2])) if flat else {}
    if "trigger_id" not in fields:
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
