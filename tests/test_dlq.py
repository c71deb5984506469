"""Dead-letter queue operations and `agent-sre dlq`, against the real broker.

Each test loads the DLQ the way the worker does: the original message goes through the input
queue, `failed_copy` records the failure, and the copy lands in `<input queue>.dlq`. One letter
is dead-lettered by the broker itself, through the input queue's delivery limit.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aio_pika
import orjson
import pytest
import typer
from typer.testing import CliRunner

from agent_sre.cli import app
from agent_sre.cli.dlq import parse_duration
from agent_sre.settings import Settings
from agent_sre.worker import dlq
from agent_sre.worker.app import Worker
from agent_sre.worker.audit import AuditLog
from agent_sre.worker.deadletter import (
    ATTEMPTS,
    BOOKKEEPING,
    FIRST_FAILURE,
    LAST_FAILURE,
    REPLAYS,
    failed_copy,
)
from agent_sre.worker.topology import declare, dlq_name

pytestmark = pytest.mark.broker

EVENT_TYPE = "io.homelab.prometheus.alert.fired"


def _alert(alertname: str) -> bytes:
    return orjson.dumps({"status": "firing", "labels": {"alertname": alertname, "namespace": "shop"}, "annotations": {}})


@pytest.fixture
def settings(broker_settings: Settings) -> Settings:
    # A delivery limit of 1 lets the broker dead-letter a message after two deliveries.
    return broker_settings.model_copy(update={"delivery_limit": 1})


async def _load(settings: Settings) -> None:
    """Four dead letters, in this queue order:
    1 no_decision  KubePodCrashLooping (alertnames header)   failed just now
    2 no_decision  NodeFilesystemAlmostOutOfSpace (from body) failed 2h ago
    3 invalid_json  (body is not JSON)                        failed 3h ago
    4 delivery_limit, dead-lettered by the broker             just now
    """
    now = datetime.now(timezone.utc)
    letters = [
        (_alert("KubePodCrashLooping"), "no_decision", ["KubePodCrashLooping"], None),
        (_alert("NodeFilesystemAlmostOutOfSpace"), "no_decision", None, now - timedelta(hours=2)),
        (b"not json {", "invalid_json", None, now - timedelta(hours=3)),
    ]
    connection = await aio_pika.connect(settings.require_amqp_url())
    async with connection:
        channel = await connection.channel()
        topology = await declare(channel, settings)
        for number, (body, reason, alertnames, failed_at) in enumerate(letters, start=1):
            await _publish_event(topology.input_exchange, body, f"event-{number}")
            original = await _get(topology.input_queue)
            copy = failed_copy(original, reason=reason, error=f"{reason} happened", attempts=1, alertnames=alertnames)
            if failed_at is not None:
                copy.headers.update({FIRST_FAILURE: failed_at.isoformat(), LAST_FAILURE: failed_at.isoformat()})
            await channel.default_exchange.publish(copy, routing_key=dlq_name(settings.input_queue))
            await original.ack()
        await _publish_event(topology.input_exchange, _alert("TargetDown"), "event-4")
        for _ in range(2):
            await (await _get(topology.input_queue)).nack(requeue=True)
        assert await _wait_for_count(channel, dlq_name(settings.input_queue), 4)


async def _publish_event(exchange: aio_pika.abc.AbstractExchange, body: bytes, event_id: str) -> None:
    headers = {"specversion": "1.0", "type": EVENT_TYPE, "source": "/test", "id": event_id}
    await exchange.publish(aio_pika.Message(body, headers=headers, content_type="application/json"), routing_key="")


async def _get(queue: aio_pika.abc.AbstractQueue) -> aio_pika.abc.AbstractIncomingMessage:
    for _ in range(50):
        message = await queue.get(no_ack=False, fail=False)
        if message is not None:
            return message
        await asyncio.sleep(0.02)
    raise AssertionError(f"nothing arrived in {queue.name}")


async def _count(channel: aio_pika.abc.AbstractChannel, name: str) -> int:
    return (await channel.declare_queue(name, passive=True)).declaration_result.message_count


async def _wait_for_count(channel: aio_pika.abc.AbstractChannel, name: str, expected: int) -> bool:
    # The broker's own dead-lettering is asynchronous to the nack that caused it.
    for _ in range(100):
        if await _count(channel, name) == expected:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_list_shows_reasons_alertnames_and_filters(settings: Settings) -> None:
    await _load(settings)
    async with dlq.open_channel(settings) as channel:
        letters = await dlq.browse(channel, settings)
        assert [(x.index, x.reason) for x in letters] == [
            (1, "no_decision"), (2, "no_decision"), (3, "invalid_json"), (4, "delivery_limit")
        ]
        assert [x.alertnames for x in letters] == [
            ("KubePodCrashLooping",), ("NodeFilesystemAlmostOutOfSpace",), (), ("TargetDown",)
        ]
        assert [x.event_id for x in letters] == ["event-1", "event-2", "event-3", "event-4"]
        broker_letter = letters[3]
        assert broker_letter.last_failure is not None
        assert abs(datetime.now(timezone.utc) - broker_letter.last_failure) < timedelta(minutes=1)
        assert settings.input_queue in broker_letter.last_error

        async def indexes(**filters: object) -> list[int]:
            return [x.index for x in await dlq.browse(channel, settings, dlq.Selection(**filters))]

        assert await indexes(reason="no_decision") == [1, 2]
        assert await indexes(alertname="NodeFilesystem*") == [2]
        assert await indexes(older_than=timedelta(hours=1)) == [2, 3]
        assert await indexes(newer_than=timedelta(minutes=30)) == [1, 4]
        assert await indexes(reason="no_decision", older_than=timedelta(hours=1)) == [2]
        assert await indexes(limit=1) == [1]
        # Browsing took nothing away, and kept the order the indexes refer to.
        assert await _count(channel, dlq_name(settings.input_queue)) == 4
        assert [x.event_id for x in await dlq.browse(channel, settings)] == ["event-1", "event-2", "event-3", "event-4"]


async def test_replay_moves_exactly_the_matching_ones_and_counts_replays(settings: Settings) -> None:
    await _load(settings)
    dead_letters = dlq_name(settings.input_queue)
    async with dlq.open_channel(settings) as channel:
        replayed = await dlq.replay(channel, settings, dlq.Selection(alertname="KubePodCrashLooping"))
        assert [x.event_id for x in replayed] == ["event-1"]
        assert await _count(channel, dead_letters) == 3
        assert await _count(channel, settings.input_queue) == 1

        topology = await declare(channel, settings)
        message = await _get(topology.input_queue)
        assert message.body == _alert("KubePodCrashLooping")
        assert message.headers[REPLAYS] == 1 and message.headers[ATTEMPTS] == 0
        assert not set(BOOKKEEPING) & set(message.headers)
        assert (message.headers["type"], message.headers["id"]) == (EVENT_TYPE, "event-1")

        # Given it fails again, when it is replayed again, then it carries replays=2.
        again = failed_copy(message, reason="no_decision", error="still nothing", attempts=1)
        await channel.default_exchange.publish(again, routing_key=dead_letters)
        await message.ack()
        assert [x.replays for x in await dlq.browse(channel, settings, dlq.Selection(reason="no_decision"))] == [0, 1]
        await dlq.replay(channel, settings, dlq.Selection(reason="no_decision", newer_than=timedelta(minutes=5)))
        message = await _get(topology.input_queue)
        assert message.headers[REPLAYS] == 2
        await message.ack()

        # The broker's own dead letter comes back without its x-death history.
        await dlq.replay(channel, settings, dlq.Selection(reason="delivery_limit"))
        message = await _get(topology.input_queue)
        assert message.headers["id"] == "event-4" and message.headers[REPLAYS] == 1
        assert not {"x-death", "x-first-death-reason"} & set(message.headers)
        assert message.headers.get("x-delivery-count", 0) == 0  # the DLQ's count stayed behind
        await message.ack()
        assert [x.event_id for x in await dlq.browse(channel, settings)] == ["event-2", "event-3"]


async def test_dry_run_changes_nothing(settings: Settings) -> None:
    await _load(settings)
    async with dlq.open_channel(settings) as channel:
        before = [x.summary(datetime.now(timezone.utc)) for x in await dlq.browse(channel, settings)]
        assert len(await dlq.replay(channel, settings, dlq.Selection(), dry_run=True)) == 4
        assert len(await dlq.purge(channel, settings, dlq.Selection(), dry_run=True)) == 4
        after = [x.summary(datetime.now(timezone.utc)) for x in await dlq.browse(channel, settings)]
        assert await _count(channel, dlq_name(settings.input_queue)) == 4
        assert await _count(channel, settings.input_queue) == 0
        drop_age = [{k: v for k, v in s.items() if k != "age_s"} for s in (before, after) for s in s]
        assert drop_age[:4] == drop_age[4:]


async def test_purge_removes_only_the_matching_ones(settings: Settings) -> None:
    await _load(settings)
    async with dlq.open_channel(settings) as channel:
        purged = await dlq.purge(channel, settings, dlq.Selection(older_than=timedelta(hours=1)))
        assert [x.event_id for x in purged] == ["event-2", "event-3"]
        assert [x.event_id for x in await dlq.browse(channel, settings)] == ["event-1", "event-4"]
        assert await _count(channel, settings.input_queue) == 0


async def test_the_worker_dead_letters_a_replayed_alert_again_with_its_count(broker_settings: Settings, tmp_path: Path) -> None:
    # Given a real worker whose selectors cannot decide on this alert, set to dead-letter what is undecided
    worker = Worker(broker_settings.model_copy(update={"undecided": "dead-letter"}), audit=AuditLog(tmp_path / "audit.jsonl"))
    await worker.start()
    try:
        async with dlq.open_channel(broker_settings) as channel:
            topology = await declare(channel, broker_settings)
            await _publish_event(topology.input_exchange, _alert("MysteryThing"), "mystery-1")

            async def dead_letter_with(replays: int) -> dlq.DeadLetter:
                for _ in range(250):
                    letters = await dlq.browse(channel, broker_settings)
                    if letters and letters[0].replays == replays:
                        return letters[0]
                    await asyncio.sleep(0.02)
                raise AssertionError(f"no dead letter with replays={replays}")

            first = await dead_letter_with(0)
            assert (first.reason, first.alertnames, first.event_id) == ("no_decision", ("MysteryThing",), "mystery-1")
            # When it is replayed twice, each time the worker dead-letters it again, counting replays.
            for replays in (1, 2):
                assert len(await dlq.replay(channel, broker_settings, dlq.Selection(reason="no_decision"))) == 1
                again = await dead_letter_with(replays)
                assert again.reason == "no_decision" and again.event_id == "mystery-1"
            assert await _count(channel, dlq_name(broker_settings.input_queue)) == 1
    finally:
        await worker.stop(grace_s=5)


def test_cli_end_to_end(settings: Settings) -> None:
    asyncio.run(_load(settings))
    env = {
        "AGENT_SRE_AMQP_URL": settings.require_amqp_url(),
        "AGENT_SRE_INPUT_QUEUE": settings.input_queue,
        "AGENT_SRE_INPUT_EXCHANGE": settings.input_exchange,
        "AGENT_SRE_OUTPUT_EXCHANGE": settings.output_exchange,
        "AGENT_SRE_DELIVERY_LIMIT": "1",
        "AGENT_SRE_RETRY_MAX_ATTEMPTS": str(settings.retry_max_attempts),
        "AGENT_SRE_RETRY_BASE_DELAY_S": str(settings.retry_base_delay_s),
        "AGENT_SRE_RETRY_MAX_DELAY_S": str(settings.retry_max_delay_s),
    }
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, ["dlq", *args], env=env)
        assert result.exit_code == 0, result.output
        return result.stdout

    table = run("list")
    assert "NodeFilesystemAlmostOutOfSpace" in table and "delivery_limit" in table and "2h" in table
    assert [x["index"] for x in orjson.loads(run("list", "--json", "--reason", "no_decision"))] == [1, 2]
    assert "not json {" in run("show", "3")
    shown = run("show", "event-2")
    assert '"alertname": "NodeFilesystemAlmostOutOfSpace"' in shown and FIRST_FAILURE in shown
    assert "would replay 1" in run("replay", "--reason", "invalid_json", "--dry-run")
    assert "replayed 1" in run("replay", "--alertname", "KubePodCrashLooping")
    assert "purged 1" in run("purge", "--older-than", "2h30m")

    refused = runner.invoke(app, ["dlq", "purge"], env=env)
    assert refused.exit_code != 0 and "--yes" in refused.stderr
    assert [x["event_id"] for x in orjson.loads(run("list", "--json"))] == ["event-2", "event-4"]
    assert "purged 2" in run("purge", "--yes")
    assert "no dead letters match" in run("list")

    missing = runner.invoke(app, ["dlq", "show", "9"], env=env)
    assert missing.exit_code == 1 and "no dead letter '9'" in missing.stderr


def test_cli_says_what_is_missing_without_a_broker() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["dlq", "list"], env={"AGENT_SRE_AMQP_URL": "", "AGENT_SRE_AMQP_URL_FILE": None})
    assert result.exit_code != 0 and "AGENT_SRE_AMQP_URL" in result.stderr

    unreachable = runner.invoke(app, ["dlq", "list"], env={"AGENT_SRE_AMQP_URL": "amqp://guest:s3cret@127.0.0.1:1/"})
    assert unreachable.exit_code != 0
    assert "cannot reach the broker at amqp://guest:***@127.0.0.1:1/" in unreachable.stderr
    assert "s3cret" not in unreachable.output


def test_durations() -> None:
    assert parse_duration("30s") == timedelta(seconds=30)
    assert parse_duration("10m") == timedelta(minutes=10)
    assert parse_duration("1d") == timedelta(days=1)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    for bad in ("", "10", "10x", "h"):
        with pytest.raises(typer.BadParameter):
            parse_duration(bad)
