"""Exactly one result per trigger when publishing fails: kept, then published by the redelivery,
which does not act again; in memory and in the real Redis."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from agent_sre.errors import TransientError
from agent_sre.functions.delivery import deliver
from agent_sre.functions.ledger import MemoryLedger, RedisLedger
from tests.functions_harness import runner_for, trigger_for
from tests.functions_scenarios import SCENARIOS
from tests.kube_api import FakeKube


class Broker:
    """A publish that fails while `down`, and records what it confirmed."""

    def __init__(self) -> None:
        self.down = True
        self.published: list[tuple[bytes, dict[str, str]]] = []

    async def publish(self, body: bytes, headers: dict[str, str]) -> None:
        if self.down:
            raise TransientError("the broker did not confirm")
        self.published.append((body, headers))


@pytest.fixture
async def fake():
    server = FakeKube()
    await server.start()
    SCENARIOS["pod-restart"].seed(server)
    yield server
    await server.close()


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_result_the_broker_lost_is_published_by_the_redelivery(fake, tmp_path, backend, redis_url, redis_prefix):
    client = aioredis.Redis.from_url(redis_url) if backend == "redis" else None
    ledger = RedisLedger(client, prefix=redis_prefix, ttl_s=60) if client else MemoryLedger(60)
    runner = await runner_for(fake, tmp_path, ledger=ledger)
    trigger = trigger_for("pod-restart", SCENARIOS["pod-restart"].labels)
    broker = Broker()
    try:
        # The first delivery acts; its result is not confirmed
        with pytest.raises(TransientError):
            await deliver(runner, trigger, await runner.run(trigger), b"k", broker.publish)
        # The redelivery acts not, and publishes the kept result
        broker.down = False
        assert await deliver(runner, trigger, await runner.run(trigger), b"k", broker.publish) is True
        # Any later one publishes nothing
        assert await deliver(runner, trigger, await runner.run(trigger), b"k", broker.publish) is False
    finally:
        if client is not None:
            await client.aclose()

    assert [r.method for r in fake.writes] == ["DELETE"]
    [(body, headers)] = broker.published
    assert headers["correlationid"] == trigger.correlation_id and b'"succeeded"' in body and headers["signature"]
