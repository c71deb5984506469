"""An alert storm through the real worker and RabbitMQ, default chain, limits in memory and in Redis.

    python benchmarks/bench_storm.py --write BENCHMARKS.md

100 distinct real alerts (drawn from the package's real-alert knowledge, each line at most once,
with realistic label values) arrive 1,000 times: each alert as 5 Alertmanager notifications (new
event ids, its repeat_interval) sent twice each (an HA pair: the same event id), shuffled. They are
preloaded in the input queue, then the worker starts (models loaded before it consumes) and the
clock runs from its first settlement to the last. Settled: acked after its trigger, suppression,
ignore or dead letter. The default limits apply: the cooldown, the token buckets, the storm caps.

A third side runs two replicas (`agent-sre run` processes) on the one queue, sharing their limits
in Redis: both consume before the deliveries are published, and the clock runs from the first
audit record to the last final one (a `busy` record, a copy parked while the other replica
publishes, is not final).

What must hold (issue 10): settled in at most 5 s, and at most one trigger per alert, fleet-wide;
the storm escalate counts apart (one per storm window, fleet-wide).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

import aio_pika
import orjson
from bench_worker import clear_redis, machine, write_section
from pydantic import SecretStr

from agent_sre.knowledge.real import load_real_alerts, real_examples
from agent_sre.schemas.alert import Alert
from agent_sre.settings import DEFAULT_EVENT_TYPE, Settings
from agent_sre.worker.app import Worker
from agent_sre.worker.topology import declare, delay_queue_name, dlq_name, retry_delays


def storm_alerts(count: int, seed: int) -> list[Alert]:
    """`count` alerts of distinct real lines (and so distinct fingerprints)."""
    examples = real_examples(load_real_alerts(), per_alert=1, seed=seed, pools="test")
    rng = random.Random(seed)
    rng.shuffle(examples)
    chosen: dict[str, Alert] = {}
    for example in examples:
        chosen.setdefault(example.alert.alertname, example.alert)
        if len(chosen) == count:
            break
    return list(chosen.values())


def deliveries(alerts: list[Alert], notifications: int, copies: int, seed: int) -> list[tuple[bytes, dict[str, str]]]:
    messages = []
    for alert in alerts:
        payload = {"status": "firing", "labels": alert.labels, "annotations": alert.annotations,
                   "startsAt": "2026-12-02T08:00:00Z"}
        for _ in range(notifications):
            event_id = str(uuid.uuid4())
            headers = {"specversion": "1.0", "id": event_id, "type": DEFAULT_EVENT_TYPE, "source": "/bench-storm",
                       "content-type": "application/json"}
            messages += [(orjson.dumps(payload), headers)] * copies
    random.Random(seed).shuffle(messages)
    return messages


async def run_side(name: str, args: argparse.Namespace, messages: list[tuple[bytes, dict[str, str]]], tmp: Path) -> dict:
    prefix = f"bench.storm.{uuid.uuid4().hex[:8]}"
    settings = Settings(
        amqp_url=SecretStr(args.amqp), input_exchange=f"{prefix}.alerts", input_queue=f"{prefix}.alerts",
        output_exchange=f"{prefix}.triggers", http_port=0, http_host="127.0.0.1", audit_log=tmp / f"{name}.jsonl",
        retrieval_cache_dir=args.cache, log_level="WARNING",
    )
    if name.startswith("redis"):
        settings = settings.model_copy(update={"redis_url": SecretStr(args.redis), "redis_prefix": prefix})
    connection = await aio_pika.connect(args.amqp)
    channel = await connection.channel(publisher_confirms=True)
    topology = await declare(channel, settings)
    capture = await channel.declare_queue(f"{settings.output_exchange}.capture", durable=True)
    await capture.bind(topology.output_exchange, routing_key="")
    if name != "redis, 2 replicas":
        await _publish(channel, settings, messages)

    if name == "redis, 2 replicas":
        return await _replicas(settings, args, messages, tmp, channel, capture, connection)
    worker = Worker(settings)
    settled: list[float] = []
    original = worker.metrics.event

    def timed(event_type: str, outcome: str) -> None:  # every settlement passes here once
        settled.append(time.perf_counter())
        original(event_type, outcome)

    worker.metrics.event = timed  # type: ignore[method-assign]
    started = time.perf_counter()
    await worker.start()
    ready = time.perf_counter()
    deadline = ready + args.timeout
    while sum(1 for _ in settled) < len(messages) or await _waiting(channel, settings):
        assert time.perf_counter() < deadline, f"{len(settled)} of {len(messages)} settled"
        await asyncio.sleep(0.02)
    await worker.stop()
    actions = Counter(orjson.loads(line)["action"] for line in (tmp / f"{name}.jsonl").read_text().splitlines())
    return {"load_s": ready - started, "settle_s": max(settled) - min(settled), "settlements": len(settled),
            **await _outcome(args, settings, channel, capture, connection, actions)}


async def _replicas(settings: Settings, args: argparse.Namespace, messages: list[tuple[bytes, dict[str, str]]],
                    tmp: Path, channel, capture, connection) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_SRE_")}
    env.update(
        AGENT_SRE_AMQP_URL=args.amqp, AGENT_SRE_INPUT_EXCHANGE=settings.input_exchange,
        AGENT_SRE_INPUT_QUEUE=settings.input_queue, AGENT_SRE_OUTPUT_EXCHANGE=settings.output_exchange,
        AGENT_SRE_REDIS_URL=args.redis, AGENT_SRE_REDIS_PREFIX=settings.redis_prefix, AGENT_SRE_HTTP_PORT="0",
        AGENT_SRE_HTTP_HOST="127.0.0.1", AGENT_SRE_LOG_LEVEL="WARNING", AGENT_SRE_RETRIEVAL_CACHE_DIR=str(args.cache),
    )
    audits = [tmp / f"replica-{n}.jsonl" for n in range(2)]
    replicas = [subprocess.Popen(["agent-sre", "run"], env={**env, "AGENT_SRE_AUDIT_LOG": str(audit)}, cwd=tmp,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for audit in audits]
    started = time.perf_counter()
    try:
        while (await channel.declare_queue(settings.input_queue, passive=True)).declaration_result.consumer_count < 2:
            assert all(r.poll() is None for r in replicas), "a replica exited"
            assert time.perf_counter() - started < args.timeout, "the replicas did not start consuming"
            await asyncio.sleep(0.1)
        ready = time.perf_counter()
        await _publish(channel, settings, messages)
        while len(records := _final_records(audits)) < len(messages) or await _waiting(channel, settings):
            assert time.perf_counter() - ready < args.timeout, f"{len(records)} of {len(messages)} settled"
            await asyncio.sleep(0.05)
    finally:
        for replica in replicas:
            replica.send_signal(signal.SIGTERM)
        for replica in replicas:
            replica.wait(60)
    times = [datetime.fromisoformat(r["ts"]).timestamp() for r in records]
    actions = Counter(r["action"] for r in records)
    return {"load_s": ready - started, "settle_s": max(times) - min(times), "settlements": len(records),
            **await _outcome(args, settings, channel, capture, connection, actions)}


def _final_records(audits: list[Path]) -> list[dict]:
    lines = [line for audit in audits if audit.exists() for line in audit.read_text().splitlines()]
    return [r for r in map(orjson.loads, lines) if r["action"] != "busy"]


async def _publish(channel, settings: Settings, messages: list[tuple[bytes, dict[str, str]]]) -> None:
    for body, headers in messages:
        await channel.default_exchange.publish(
            aio_pika.Message(body, headers=headers, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=settings.input_queue,
        )


async def _outcome(args: argparse.Namespace, settings: Settings, channel, capture, connection, actions: Counter) -> dict:
    """Count the triggers per alert, then delete the side's queues, exchanges and Redis keys."""
    triggers: Counter[str] = Counter()
    storm_escalations = 0
    while (message := await capture.get(no_ack=True, fail=False)) is not None:
        data = orjson.loads(message.body)
        if data["triggered_by"] == "storm":
            storm_escalations += 1
        else:
            triggers[data["correlation_id"]] += 1
    for queue in [settings.input_queue, dlq_name(settings.input_queue), capture.name] + [
        delay_queue_name(settings.input_queue, d) for d in set(retry_delays(settings))
    ]:
        await channel.queue_delete(queue)
    for exchange in (settings.input_exchange, settings.output_exchange):
        await channel.exchange_delete(exchange)
    await connection.close()
    if settings.redis_url is not None:
        await clear_redis(args.redis, settings.redis_prefix)
    return {
        "alerts_triggered": len(triggers),
        "most_triggers_per_alert": max(triggers.values(), default=0),
        "storm_escalations": storm_escalations,
        "actions": dict(actions),
    }


async def _waiting(channel: aio_pika.abc.AbstractChannel, settings: Settings) -> int:
    """Messages still in the input or delay queues (a retried or parked one is not settled yet)."""
    total = 0
    for queue in [settings.input_queue] + [delay_queue_name(settings.input_queue, d) for d in set(retry_delays(settings))]:
        declared = await channel.declare_queue(queue, passive=True)
        total += declared.declaration_result.message_count or 0
    return total


def report(args: argparse.Namespace, results: dict[str, dict]) -> str:
    lines = [
        "## Alert storm (issue 10)",
        "",
        f"- Command: `{' '.join(['python'] + sys.argv)}`",
        f"- Machine: {machine()}",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- {args.alerts} distinct real alerts × {args.notifications} notifications × {args.copies} HA copies = "
        f"{args.alerts * args.notifications * args.copies} deliveries, shuffled, preloaded; the default chain "
        "and limits. Settle time: first settlement to last, after the models loaded.",
        "",
        "| limits | settled in s | target | settlements | alerts triggered | most triggers per alert | storm escalates | audit actions |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        verdict = "meets" if r["settle_s"] <= 5.0 and r["most_triggers_per_alert"] <= 1 else "MISSES"
        actions = ", ".join(f"{k} {v}" for k, v in sorted(r["actions"].items()))
        lines.append(f"| {name} | {r['settle_s']:.2f} | ≤ 5 s, ≤ 1 per alert: {verdict} | {r['settlements']} | "
                     f"{r['alerts_triggered']} | {r['most_triggers_per_alert']} | {r['storm_escalations']} | {actions} |")
    lines.append("")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    messages = deliveries(storm_alerts(args.alerts, args.seed), args.notifications, args.copies, args.seed)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ["memory"] + (["redis", "redis, 2 replicas"] if args.redis else []):
            print(f"{name} ...", file=sys.stderr)
            results[name] = await run_side(name, args, messages, Path(tmp))
            print(f"  {results[name]}", file=sys.stderr)
    text = report(args, results)
    print(text)
    if args.write:
        write_section(args.write, text, key="bench_storm")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=100, help="distinct alerts")
    parser.add_argument("--notifications", type=int, default=5, help="Alertmanager notifications per alert")
    parser.add_argument("--copies", type=int, default=2, help="copies of each notification (an HA pair sends 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="'' leaves the Redis side out")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "agent-sre",
                        help="embedding cache (warm after the first run)")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--write", type=Path, help="update this Markdown file's section (e.g. BENCHMARKS.md)")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
