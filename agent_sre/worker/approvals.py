"""Approval of risky actions: a decision that waits for a human before its trigger goes out.

A function waits when its risk is at AGENT_SRE_APPROVAL_RISK or above, or when the catalog gives it
`mode: approve`. The worker then publishes `approval.requested` instead of the trigger, and holds
the request in Redis (never in one process's memory), so it outlives a restart of any replica:

- `{p}:approval:<correlation id>`: a hash with the state, the function, the alert and the decision
  (JSON), `requested_at`, `expires_at` (Redis time, seconds), and once answered `by` and
  `answered_at`. It is kept `keep_s` past its expiry, so a late answer is told what became of it.
- `{p}:approvals`: the pending ones, a sorted set by expiry, for `agent-sre approvals list`.

States: `pending` -> `answering` (one replica publishes the answer's trigger, for at most
`lease_s`; a replica killed meanwhile leaves it to be taken again) -> `approved`, `denied`,
`expired` or `withdrawn` (the alert resolved first). Every change is one Lua script, so two
answers racing, or two replicas, never publish twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from ..schemas.alert import Alert
from ..schemas.cloudevent import event_data
from ..schemas.decision import Decision
from ..schemas.events import (  # noqa: F401 (re-exported: the approval event types)
    APPROVAL_DENIED_TYPE,
    APPROVAL_EXPIRED_TYPE,
    APPROVAL_GRANTED_TYPE,
    APPROVAL_REQUESTED_TYPE,
)
from .redis_client import Batch, redis_call


class State(str, Enum):
    PENDING = "pending"
    ANSWERING = "answering"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


WAITING = (State.PENDING, State.ANSWERING)  # not answered yet


class NotTaken(str, Enum):
    """Why `RedisApprovals.take` found no request to answer now: its state, or one of these."""

    UNKNOWN = "unknown"  # no such request (never made, or older than its keep time)
    EARLY = "early"  # a timer that came back before its request expired
    ANSWERING = "answering"  # another replica is answering it
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True)
class Approval:
    correlation_id: str
    function: str
    fingerprint: str
    alertname: str
    alert: dict[str, Any]  # `Alert`, as JSON
    decision: dict[str, Any]  # `Decision`, as JSON
    requested_at: float
    expires_at: float
    state: State = State.PENDING
    by: str | None = None

    @classmethod
    def of(cls, alert: Alert, decision: Decision, ttl_s: float, now: float | None = None) -> Approval:
        now = time.time() if now is None else now
        return cls(
            correlation_id=alert.correlation_id, function=decision.lambda_function or "", fingerprint=alert.identity,
            alertname=alert.alertname, alert=alert.model_dump(mode="json", exclude_none=True),
            decision=decision.model_dump(mode="json"), requested_at=now, expires_at=now + ttl_s,
        )

    def rebuilt(self) -> tuple[Alert, Decision]:
        return Alert.model_validate(self.alert), Decision.model_validate(self.decision)

    def summary(self) -> dict[str, Any]:
        """What a person needs to answer it: for `approvals list` and `GET /approvals`."""
        return {
            "correlation_id": self.correlation_id, "function": self.function,
            "parameters": self.decision.get("parameters", {}), "alertname": self.alertname,
            "labels": self.alert.get("labels", {}), "reasoning": self.decision.get("reasoning"),
            "confidence": self.decision.get("confidence"), "state": self.state.value,
            "requested_at": self.requested_at, "expires_at": self.expires_at, "by": self.by,
        }


class Answer(BaseModel):
    """The data of an approval.granted / .denied (or the worker's .expired) event."""

    model_config = ConfigDict(extra="ignore")

    correlation_id: StrictStr = Field(min_length=1, max_length=200)
    by: StrictStr | None = Field(default=None, max_length=200)


def parse_approval_answer(data: Any) -> Answer:
    return event_data(Answer, data, reason="invalid_answer", what="an approval answer",
                      expected='{"correlation_id": "...", "by": "..."}')


_FIELDS = ("correlation_id", "function", "fingerprint", "alertname", "alert", "decision", "requested_at",
           "expires_at", "state", "by")

# KEYS: approval, index. ARGV: the fields as name, value pairs, correlation_id first (state
# pending), then expires_at and the keep ms.
# A request for an occurrence already put to a human and not over: returns its fields instead.
# One that was approved (an earlier attempt) or withdrawn is asked again.
_REQUEST = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'pending' or state == 'answering' or state == 'denied' or state == 'expired' then
  return redis.call('HGETALL', KEYS[1])
end
redis.call('DEL', KEYS[1])
local n = #ARGV - 2
redis.call('HSET', KEYS[1], unpack(ARGV, 1, n))
redis.call('PEXPIRE', KEYS[1], ARGV[n + 2])
redis.call('ZADD', KEYS[2], ARGV[n + 1], ARGV[2])
return {}
"""

# KEYS: approval. ARGV: lease ms, 1 = only once expired. Takes a pending request (or one whose
# answering replica's lease ran out) to publish its answer. Returns its fields, or {state} when
# it is not to be taken now (`early`: the timer came back before the request expired).
_TAKE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'unknown'} end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
if state == 'answering' and tonumber(redis.call('HGET', KEYS[1], 'lease')) < now then state = 'pending' end
if state ~= 'pending' then return {state} end
if ARGV[2] == '1' and tonumber(redis.call('HGET', KEYS[1], 'expires_at')) > now + 1 then return {'early'} end
redis.call('HSET', KEYS[1], 'state', 'answering', 'lease', tostring(now + tonumber(ARGV[1]) / 1000))
return redis.call('HGETALL', KEYS[1])
"""

# KEYS: approval, index. ARGV: final state, by, answered_at.
_FINISH = """
if redis.call('HGET', KEYS[1], 'state') ~= 'answering' then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'by', ARGV[2], 'answered_at', ARGV[3])
redis.call('ZREM', KEYS[2], redis.call('HGET', KEYS[1], 'correlation_id'))
return 1
"""

# KEYS: approval. An answer whose trigger could not be published: pending again.
_GIVE_BACK = """
if redis.call('HGET', KEYS[1], 'state') == 'answering' then redis.call('HSET', KEYS[1], 'state', 'pending') end
return 1
"""

# KEYS: approval, index. ARGV: correlation id. The alert resolved while its request was pending.
_WITHDRAW = """
if redis.call('HGET', KEYS[1], 'state') ~= 'pending' then return {} end
redis.call('HSET', KEYS[1], 'state', 'withdrawn')
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('HGETALL', KEYS[1])
"""

# KEYS: approval, index. ARGV: correlation id. A request whose event could not be published.
_CANCEL = """
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""

# KEYS: approval. ARGV: none.
_GET = "return redis.call('HGETALL', KEYS[1])"


class RedisApprovals:
    def __init__(self, batch: Batch, *, prefix: str, keep_s: float, lease_s: float) -> None:
        self.prefix = "{" + prefix + "}"
        self.keep_ms = int(keep_s * 1000)
        self.lease_ms = int(lease_s * 1000)
        self.client = batch.client
        self.timeout_s = batch.timeout_s
        self._request = batch.script(_REQUEST)
        self._take = batch.script(_TAKE)
        self._finish = batch.script(_FINISH)
        self._give_back = batch.script(_GIVE_BACK)
        self._withdraw = batch.script(_WITHDRAW)
        self._cancel = batch.script(_CANCEL)
        self._get = batch.script(_GET)

    async def request(self, approval: Approval) -> Approval | None:
        """Hold a new request; or, when this alert occurrence already waits for (or was refused by)
        a human, return that one and hold nothing."""
        flat: list[object] = []
        for name in _FIELDS:
            value = getattr(approval, name)
            if value is None:
                continue
            flat += [name, value.value if isinstance(value, State) else
                     orjson.dumps(value).decode() if isinstance(value, dict) else value]
        keep_ms = int(max(0.0, approval.expires_at - approval.requested_at) * 1000) + self.keep_ms
        found = await self._request(self._keys(approval.correlation_id), [*flat, approval.expires_at, keep_ms])
        return _approval(found)

    async def take(self, correlation_id: str, *, expired: bool = False) -> Approval | NotTaken:
        """The pending request, now this replica's to answer; else why not (its state, `unknown`,
        or `early` for a timer that came back before the request expired)."""
        found = await self._take([self._key(correlation_id)], [self.lease_ms, int(expired)])
        approval = _approval(found)
        return approval if approval is not None else NotTaken(found[0])

    async def finish(self, correlation_id: str, state: State, by: str) -> None:
        await self._finish(self._keys(correlation_id), [state.value, by, repr(time.time())])

    async def give_back(self, correlation_id: str) -> None:
        await self._give_back([self._key(correlation_id)], [])

    async def withdraw(self, correlation_id: str) -> Approval | None:
        return _approval(await self._withdraw(self._keys(correlation_id), [correlation_id]))

    async def cancel(self, correlation_id: str) -> None:
        await self._cancel(self._keys(correlation_id), [correlation_id])

    async def get(self, correlation_id: str) -> Approval | None:
        return _approval(await self._get([self._key(correlation_id)], []))

    async def pending(self, limit: int = 1000) -> list[Approval]:
        """The requests waiting for an answer, soonest to expire first."""
        ids = await redis_call(self.client.zrange(f"{self.prefix}:approvals", 0, limit - 1), self.timeout_s)
        found = [await self.get(correlation_id) for correlation_id in ids]
        return [a for a in found if a is not None and a.state in WAITING]

    def _key(self, correlation_id: str) -> str:
        return f"{self.prefix}:approval:{correlation_id}"

    def _keys(self, correlation_id: str) -> list[str]:
        return [self._key(correlation_id), f"{self.prefix}:approvals"]


NEEDS_REDIS = ("approvals are held in Redis: set AGENT_SRE_REDIS_URL (or _FILE), or unset "
               "AGENT_SRE_APPROVAL_RISK and every catalog `mode: approve`")


class NotWaiting(LookupError):
    """No request waits for an answer under that id: the message says what became of it, and
    `state` is the request's (None: there is no such request)."""

    def __init__(self, message: str, state: State | None = None) -> None:
        super().__init__(message)
        self.state = state


async def waiting(approvals: RedisApprovals, correlation_id: str) -> Approval:
    """The request, if it still waits for an answer; else NotWaiting, saying why."""
    approval = await approvals.get(correlation_id)
    if approval is None:
        raise NotWaiting(f"no approval request {correlation_id!r} (never made, or older than its keep time); "
                         "`agent-sre approvals list` shows those waiting")
    if approval.state not in WAITING:
        answered = f" by {approval.by}" if approval.by else ""
        raise NotWaiting(f"approval request {correlation_id!r} is {approval.state.value}{answered}: it waits for no answer",
                         approval.state)
    return approval


def _approval(flat: list[str] | None) -> Approval | None:
    """From a script's HGETALL answer: field, value, field, value, …"""
    fields = dict(zip(flat[::2], flat[1::2])) if flat and len(flat) > 1 else {}
    if "correlation_id" not in fields:
        return None
    return Approval(
        correlation_id=fields["correlation_id"], function=fields["function"], fingerprint=fields["fingerprint"],
        alertname=fields["alertname"], alert=orjson.loads(fields["alert"]), decision=orjson.loads(fields["decision"]),
        requested_at=float(fields["requested_at"]), expires_at=float(fields["expires_at"]),
        state=State(fields["state"]), by=fields.get("by") or None,
    )
