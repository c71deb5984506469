"""Approvals with AGENT_SRE_RESULT_KEY set: the answers the worker's own `POST /approvals` and the
`agent-sre approvals` CLI send are signed and taken; one merely published is not."""

from __future__ import annotations

import asyncio

import aio_pika
from pydantic import SecretStr

from agent_sre.worker.deadletter import REASON
from agent_sre.worker.publisher import TRIGGER_TYPE, approval_answer
from tests.broker_harness import crash_loop
from tests.test_approvals import answer_with_cli, approval_worker, post_answer  # noqa: F401  (a fixture)

KEY = "approvals-key"


async def test_signed_answers_approve_and_a_published_one_does_not(approval_worker, monkeypatch):  # noqa: F811
    harness = await approval_worker(result_key=SecretStr(KEY))
    await harness.send(crash_loop("api-1"))
    await harness.send(crash_loop("api-2"))
    requests = await harness.triggers(2)
    first, second = (r.headers["correlationid"] for r in requests)

    # A grant published straight to the broker, unsigned: dead-lettered, nothing triggered
    body, headers = approval_answer(second, True, "mallory")
    exchange = await harness.channel.get_exchange(harness.settings.input_exchange)
    await exchange.publish(aio_pika.Message(body, headers=headers, content_type="application/json"), routing_key="")
    [dead] = await harness.dead_letters(1)
    assert dead.headers[REASON] == "unsigned_answer"
    await harness.triggers(0)

    # The worker's own endpoint signs its answer: taken, the trigger goes out
    status, _ = await post_answer(harness, first, {"approved": True, "by": "alice"})
    assert status == 202
    [trigger] = await harness.triggers(1)
    assert trigger.headers["type"] == TRIGGER_TYPE and trigger.headers["correlationid"] == first

    # So does the CLI, given the key
    monkeypatch.setenv("AGENT_SRE_RESULT_KEY", KEY)
    result = await asyncio.to_thread(answer_with_cli, harness, "approve", second, "bob")
    assert result.exit_code == 0, result.output
    [trigger] = await harness.triggers(1)
    assert trigger.headers["correlationid"] == second

