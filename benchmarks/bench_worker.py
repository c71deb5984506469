"""End-to-end worker throughput and latency against a bare aio-pika relay, side by side, one run.

    python benchmarks/bench_worker.py --events 5000 --write BENCHMARKS.md

Every side runs in this process against the same RabbitMQ, with the same prefetch and concurrency:
- worker: the real `Worker` (decode, `static` selector, catalog validation, limits in memory, audit
  to a file, trigger publish with confirm, ack);
- worker+redis: the same with its limits shared in Redis (`--redis`, the machine's by default);
- relay: consume -> publish the body with confirm -> ack, no parsing at all, as aio-pika does it;
- relay-lean: the same through the worker's own publish and ack, which skip aio-pika's waits for
  each frame to be flushed to the socket (the broker's confirm is what counts). The issue's ratio
  is against `relay`; this side shows how much of the worker's lead comes from that alone.

Throughput: N events preloaded in the input queue, timed until N confirmed outputs reach a capture
queue. Latency: events published at a steady pace below both capacities, each timed from publish
to arrival of its output. Limits are opened wide (every alert is distinct and the token bucket is
huge) so that the benchmark measures the processing path, not the suppressions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import aio_pika
import orjson
from pydantic import SecretStr

from agent_sre.settings import Settings
from agent_sre.worker.app import Worker
from agent_sre.worker.connection import ack, publish_confirmed
from agent_sre.worker.topology import declare, delay_queue_name, dlq_name, retry_delays

EVENT_TYPE = "io.homelab.prometheus.alert.fired"


def alert_event(seq: int, sent: float) -> tuple[bytes, dict[str, str]]:
    """A firing alert that names its own remediation, so the `static` selector decides it."""
    alert = {
        "status": "firing",
        "labels": {"alertname": "KubePodCrashLooping", "pod": f"api-{seq}", "namespace": "bench", "seq": str(seq)},
        "annotations": {"lambda_function": "pod-restart", "summary": "Pod is crash looping.", "sent": repr(sent)},
        "startsAt": "2026-11-21T10:00:00Z",
    }
    headers = {"specversion": "1.0", "id": f"bench-{seq}", "type": EVENT_TYPE, "source": "/bench",
               "content-type": "application/json"}
    return orjson.dumps(alert), headers


async def preload(channel: aio_pika.abc.AbstractChannel, queue: str, count: int) -> None:
    for start in range(0, count, 500):
        batch = []
        for seq in range(start, min(start + 500, count)):
            body, headers = alert_event(seq, 0.0)
            message = aio_pika.Message(body, headers=headers, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            batch.append(channel.default_exchange.publish(message, routing_key=queue))
        await asyncio.gather(*batch)


class Capture:
    """Counts outputs on a queue bound to the output exchange and records each one's latency."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.latencies: list[float] = []
        self.first = self.last = 0.0
        self.done = asyncio.Event()
        self.expected = 0

    async def on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        data = orjson.loads(message.body)
        alert = data.get("alert", data)  # the worker wraps the alert; the relay copies it
        seq = alert["labels"]["seq"]
        sent = float(alert["annotations"]["sent"])
        if sent:
            self.latencies.append(time.perf_counter() - sent)
        self.seen.add(seq)
        self.last = time.perf_counter()
        self.first = self.first or self.last
        await message.ack()
        if len(self.seen) >= self.expected:
            self.done.set()

    def reset(self, expected: int) -> None:
        self.seen.clear()
        self.latencies.clear()
        self.first = self.last = 0.0
        self.expected = expected
        self.done.clear()


async def bind_capture(channel: aio_pika.abc.AbstractChannel, exchange: str, capture: Capture) -> str:
    queue = await channel.declare_queue(f"{exchange}.capture", durable=True)
    await queue.bind(exchange, routing_key="")
    await channel.set_qos(prefetch_count=1000)
    return await queue.consume(capture.on_message)


class Relay:
    """The floor: consume, publish the same body with a confirm, ack. Nothing else."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def start(self) -> None:
        # Its own connection, as the worker has.
        self.connection = await aio_pika.connect_robust(self.settings.require_amqp_url())
        publish = await self.connection.channel(publisher_confirms=True)
        self.exchange = await publish.get_exchange(self.settings.output_exchange)
        consume = await self.connection.channel()
        await consume.set_qos(prefetch_count=self.settings.prefetch)
        queue = await consume.get_queue(self.settings.input_queue)
        slots = asyncio.Semaphore(self.settings.concurrency)

        async def relay(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with slots:
                out = aio_pika.Message(message.body, headers=dict(message.headers or {}),
                                       delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
                await self.forward(out)
                await self.ack(message)

        await queue.consume(relay)

    async def forward(self, message: aio_pika.Message) -> None:
        await self.exchange.publish(message, routing_key="")

    async def ack(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await message.ack()

    async def stop(self) -> None:
        await self.connection.close()


class LeanRelay(Relay):
    """The relay, publishing and acking as the worker does (`publish_confirmed`, `ack`)."""

    async def forward(self, message: aio_pika.Message) -> None:
        await publish_confirmed(self.exchange, message, "", False, 30.0)

    async def ack(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await ack(message)


async def paced(channel: aio_pika.abc.AbstractChannel, exchange: str, count: int, rate: float, first: int) -> None:
    target = await channel.get_exchange(exchange)
    interval = 1.0 / rate
    start = time.perf_counter()
    for i in range(count):
        await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
        body, headers = alert_event(first + i, time.perf_counter())
        await target.publish(aio_pika.Message(body, headers=headers, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                             routing_key="")


async def run_side(name: str, url: str, args: argparse.Namespace, audit_dir: Path) -> dict[str, float]:
    prefix = f"bench.{name}.{uuid.uuid4().hex[:8]}"
    settings = Settings(
        amqp_url=SecretStr(url), input_exchange=f"{prefix}.alerts", input_queue=f"{prefix}.alerts",
        output_exchange=f"{prefix}.triggers", selectors=["static"], prefetch=args.prefetch,
        concurrency=args.concurrency, rate_limit_burst=10**9, storm_per_minute=10**9, storm_per_message=10**9,
        cooldown_s=0, http_port=0,
        http_host="127.0.0.1", audit_log=audit_dir / f"{name}.jsonl",
    )
    connection = await aio_pika.connect_robust(url)
    channel = await connection.channel()
    await declare(channel, settings)
    capture = Capture()
    await bind_capture(await connection.channel(), settings.output_exchange, capture)
    await preload(channel, settings.input_queue, args.events)
    capture.reset(args.events)

    if name == "worker+redis":
        settings = settings.model_copy(update={"redis_url": SecretStr(args.redis), "redis_prefix": prefix})
    processor = Worker(settings) if name.startswith("worker") else LeanRelay(settings) if name == "relay-lean" else Relay(settings)
    await processor.start()
    await asyncio.wait_for(capture.done.wait(), timeout=args.timeout)
    # Steady state: from the first output to the last, so connecting and declaring don't count.
    elapsed = capture.last - capture.first

    capture.reset(args.paced)
    await paced(channel, settings.input_exchange, args.paced, args.rate, first=args.events)
    await asyncio.wait_for(capture.done.wait(), timeout=args.timeout)
    latencies = sorted(capture.latencies)

    await processor.stop()
    await cleanup(channel, settings)
    if name == "worker+redis":
        await clear_redis(args.redis, prefix)
    await connection.close()
    return {
        "rate": (args.events - 1) / elapsed,
        "seconds": elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


async def cleanup(channel: aio_pika.abc.AbstractChannel, settings: Settings) -> None:
    names = [settings.input_queue, dlq_name(settings.input_queue), f"{settings.output_exchange}.capture"]
    names += [delay_queue_name(settings.input_queue, d) for d in set(retry_delays(settings))]
    for queue in names:
        await channel.queue_delete(queue)
    for exchange in (settings.input_exchange, settings.output_exchange):
        await channel.exchange_delete(exchange)


async def clear_redis(url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    keys = [key async for key in client.scan_iter(match=f"{{{prefix}}}:*", count=10_000)]  # few round trips
    for start in range(0, len(keys), 1000):
        await client.delete(*keys[start:start + 1000])
    await client.aclose()


def cpu_model() -> str:
    return next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")), platform.processor())


def machine() -> str:
    cpu = cpu_model()
    try:
        broker = subprocess.run(["rabbitmqctl", "version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        broker = "unknown"
    return f"{os.cpu_count()} cores, {cpu}; Python {platform.python_version()}; RabbitMQ {broker or 'unknown'} on loopback"


def report(args: argparse.Namespace, rounds: list[dict[str, dict[str, float]]]) -> str:
    lines = [
        "## Worker vs bare relay, limits in memory and in Redis (issues 2 and 10)",
        "",
        f"- Command: `{' '.join(['python'] + sys.argv)}`",
        f"- Machine: {machine()}",
        f"- Date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Throughput: {args.events} events preloaded, timed from the first confirmed output to the last; "
        f"prefetch {args.prefetch}, concurrency {args.concurrency}. Latency: {args.paced} events published at "
        f"{args.rate:.0f}/s, publish to output arrival. Worker path: `static` selector, catalog validation, "
        "limits, audit to a file, confirmed trigger. `relay` is the floor the target is set against (aio-pika's "
        "publish and ack, each waiting for its frame to be flushed); `relay-lean` publishes and acks as the worker "
        "does, without those waits.",
        "",
        "| round | side | alerts/s | seconds | p50 latency ms | p99 latency ms | side / relay |",
        "|---|---|---|---|---|---|---|",
    ]
    ratios: dict[str, list[float]] = {}
    for number, results in enumerate(rounds, start=1):
        for name, r in results.items():
            ratio = r["rate"] / results["relay"]["rate"]
            if name != "relay":
                ratios.setdefault(name, []).append(ratio)
            shown = f"{ratio:.0%}" if name != "relay" else ""
            lines.append(f"| {number} | {name} | {r['rate']:.0f} | {r['seconds']:.2f} | {r['p50_ms']:.1f} | "
                         f"{r['p99_ms']:.1f} | {shown} |")
    lines.append("")
    for name, values in ratios.items():
        lines.append(f"- {name} / relay throughput, median of {len(values)} rounds: **{statistics.median(values):.0%}**")
    if "relay-lean" in ratios:
        for name in ("worker", "worker+redis"):
            if name in ratios:
                lean = [results[name]["rate"] / results["relay-lean"]["rate"] for results in rounds]
                lines.append(f"- {name} / relay-lean (a relay that publishes and acks as the worker does): "
                             f"{statistics.median(lean):.0%}")
    if "worker" in ratios and "worker+redis" in ratios:
        overhead = [redis / memory for redis, memory in zip(ratios["worker+redis"], ratios["worker"])]
        lines.append(f"- worker+redis / worker (the cost of sharing the limits): **{statistics.median(overhead):.0%}**")
    lines.append("")
    return "\n".join(lines)


def write_section(path: Path, text: str, key: str = "bench_worker") -> None:
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    block = f"{start}\n{text}\n{end}"
    current = path.read_text() if path.exists() else "# Benchmarks\n\nEach section is written by its script under `benchmarks/`; rerun the command to refresh it.\n"
    if start in current and end in current:
        current = current[: current.index(start)] + block + current[current.index(end) + len(end):]
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    path.write_text(current)


async def main(args: argparse.Namespace) -> None:
    url = os.environ.get("AMQP_URL") or os.environ.get("AGENT_SRE_AMQP_URL") or "amqp://guest:guest@127.0.0.1:5672/"
    rounds: list[dict[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        # Alternate the sides, so that a noisy neighbour on this shared machine hits both alike.
        sides = ["relay", "worker"] + (["worker+redis"] if args.redis else []) + (["relay-lean"] if args.lean else [])
        for number in range(args.rounds):
            results: dict[str, dict[str, float]] = {}
            for name in sides if number % 2 == 0 else sides[::-1]:
                print(f"round {number + 1}: {name} ...", file=sys.stderr)
                results[name] = await run_side(name, url, args, Path(tmp))
                print(f"  {results[name]}", file=sys.stderr)
            rounds.append(results)
    text = report(args, rounds)
    print(text)
    if args.write:
        write_section(args.write, text)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000, help="events preloaded for the throughput run")
    parser.add_argument("--paced", type=int, default=1000, help="events sent at a steady pace for latency")
    parser.add_argument("--rate", type=float, default=200.0, help="pace of the latency run, events/s")
    parser.add_argument("--prefetch", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="alternating relay/worker rounds")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds per phase")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0",
                        help="Redis for the worker+redis side ('' leaves that side out)")
    parser.add_argument("--lean", action=argparse.BooleanOptionalAction, default=True,
                        help="also run relay-lean, the relay publishing and acking as the worker does")
    parser.add_argument("--write", type=Path, help="update this Markdown file's section (e.g. BENCHMARKS.md)")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
