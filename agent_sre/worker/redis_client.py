"""Redis, the one room for it: connect, batch the script calls, bound each call, and turn every
failure into `RedisUnavailable` (a TransientError: nothing acts without the shared state).

The stores take a `Batch` (`agent_sre.worker.shared.RedisLimits`, `outcomes.RedisOutcomes`,
`approvals.RedisApprovals`); `agent_sre.worker.stores` builds them from the settings.
"""

from __future__ import annotations

import asyncio
import hashlib

import redis.asyncio as aioredis
from hiredis import pack_command
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError, RedisError, ResponseError

from ..errors import RedisUnavailable


def connect(url: str, timeout_s: float) -> Batch:
    """A client for `url` (ValueError when it is no Redis URL), its calls bounded by `timeout_s`.
    Connects lazily: the first call fails with RedisUnavailable when Redis cannot be reached."""
    # No socket_timeout: redis-py would wrap every send in asyncio.wait_for, a task per call.
    # Each call is bounded by `timeout_s` here instead (`Batch`, `redis_call`).
    client = aioredis.Redis.from_url(url, decode_responses=True, socket_timeout=None, socket_connect_timeout=timeout_s)
    return Batch(client, timeout_s)


async def redis_call(awaitable, timeout_s: float | None = None):  # type: ignore[no-untyped-def]
    """Await a Redis call, for at most `timeout_s`; Redis unreachable, failing or silent is a
    RedisUnavailable: nothing acts without it."""
    try:
        async with asyncio.timeout(timeout_s):
            return await awaitable
    except (RedisError, OSError) as exc:  # a timeout is an OSError too
        raise unavailable(exc) from exc


def unavailable(exc: BaseException) -> RedisUnavailable:
    """What any failed Redis call raises: worth retrying, and nothing acts meanwhile."""
    return RedisUnavailable(f"shared state (Redis) unavailable: {type(exc).__name__}: {exc}")


# One queued script call: the script, its EVALSHA command packed, and its answer's future.
_Call = tuple["_Script", bytes, asyncio.Future[object]]


class Batch:
    """Script calls made while a batch is on its way go to Redis together, in one pipeline: one
    round trip and one write for many alerts. Under load that cuts the client's cost per call by
    more than half (redis-py's per-command overhead, not Redis, is what costs here); alone, a call
    goes at once, as it would unbatched.

    Each round trip is bounded by `timeout_s`; a call fails with RedisUnavailable when Redis is
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

    async def close(self, client: bool = True) -> None:
        """Give back the batch's connection and, with `client`, close the client."""
        if self._connection is not None:
            await self.client.connection_pool.release(self._connection)
            self._connection = None
        if client:
            await self.client.aclose()


class _Script:
    def __init__(self, batch: Batch, source: str) -> None:
        self.batch, self.source = batch, source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, keys: list[str], args: list[object]) -> asyncio.Future[object]:
        return self.batch.call(self, keys, args)
