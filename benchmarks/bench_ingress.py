"""Slow clients against the real worker's HTTP ingress: memory held and how soon they are cut off.

    python benchmarks/bench_ingress.py --write BENCHMARKS.md

The worker (`static` selector only, limits in memory) runs in this process against the local
RabbitMQ with its default HTTP limits. N clients each open a connection, send a request head for a
1 MiB body and part of that body, then stall; as many again send half a head and stall. The
benchmark reports how many were let in or refused (503 past the connection cap), the process's
resident memory before, at the peak and after, and when the last stalled connection was closed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).parent))
from bench_worker import machine, write_section  # noqa: E402

from agent_sre.settings import Settings  # noqa: E402
from agent_sre.worker.app import Worker  # noqa: E402


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def stalled_client(port: int, head_only: bool, body_bytes: int, chunk: bytes) -> tuple[str, float]:
    """Send a head (or half of one) and part of a body, then wait; how the server ended it, and when."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    head = (b"POST / HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nce-specversion: 1.0\r\n"
            b"ce-id: slow\r\nce-type: io.homelab.prometheus.alert.fired\r\nce-source: /bench\r\n"
            b"Content-Length: 1048576\r\n\r\n")
    try:
        if head_only:
            writer.write(head[: len(head) // 2])
        else:
            writer.write(head)
            for _ in range(body_bytes // len(chunk)):
                writer.write(chunk)
        await writer.drain()
        answer = await reader.read(200)  # blocks until the server answers or closes
        outcome = "503" if b" 503 " in answer[:20] else ("closed" if not answer else answer[:12].decode(errors="replace"))
    except (ConnectionError, OSError):
        outcome = "reset"
    finally:
        writer.close()
    return outcome, time.monotonic() - started


async def run(args: argparse.Namespace) -> dict[str, object]:
    url = os.environ.get("AMQP_URL") or "amqp://guest:guest@127.0.0.1:5672/"
    prefix = f"bench.ingress.{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(amqp_url=SecretStr(url), input_exchange=f"{prefix}.alerts", input_queue=f"{prefix}.alerts",
                            output_exchange=f"{prefix}.triggers", selectors=["static"], http_port=0,
                            http_host="127.0.0.1", audit_log=Path(tmp) / "audit.jsonl")
        worker = Worker(settings)
        await worker.start()
        assert worker.http_port is not None
        before = rss_mib()
        peak = before
        chunk = b"x" * 65536

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, rss_mib())
                await asyncio.sleep(0.2)

        sampler = asyncio.ensure_future(sample())
        clients = [stalled_client(worker.http_port, n % 2 == 1, args.body_kib * 1024, chunk) for n in range(args.clients)]
        results = await asyncio.gather(*clients)
        sampler.cancel()
        after = rss_mib()
        outcomes: dict[str, int] = {}
        for outcome, seconds in results:
            if outcome == "503":
                outcome = "refused at once (503, the cap)" if seconds < 1 else "503 at the body timeout"
            elif outcome == "closed":
                outcome = f"closed unanswered at the head timeout ({seconds:.0f} s)"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        last_closed = max(seconds for _, seconds in results)
        await worker.stop(grace_s=5)
        await _delete(url, settings)
    return {"before": before, "peak": peak, "after": after, "outcomes": outcomes, "last_closed_s": last_closed,
            "settings": settings}


async def _delete(url: str, settings: Settings) -> None:
    import aio_pika

    from agent_sre.worker.topology import delay_queue_name, dlq_name, retry_delays

    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for queue in [settings.input_queue, dlq_name(settings.input_queue)] + [
            delay_queue_name(settings.input_queue, d) for d in set(retry_delays(settings))
        ]:
            await channel.queue_delete(queue)
        for exchange in (settings.input_exchange, settings.output_exchange):
            await channel.exchange_delete(exchange)


def report(args: argparse.Namespace, result: dict[str, object]) -> str:
    settings: Settings = result["settings"]  # type: ignore[assignment]
    outcomes = ", ".join(f"{count} {name}" for name, count in sorted(result["outcomes"].items()))  # type: ignore[union-attr]
    return "\n".join([
        "## Slow HTTP clients (issue 10)",
        "",
        f"- Command: `{' '.join(['python'] + sys.argv)}`",
        f"- Machine: {machine()}",
        f"- Date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- {args.clients} clients at once against `agent-sre run`'s ingress (default limits: "
        f"{settings.http_max_connections} connections, head {settings.http_header_timeout_s:g} s, body "
        f"{settings.http_body_timeout_s:g} s): half send a head for a 1 MiB body and {args.body_kib} KiB of it, "
        "half send half a head; then all stall.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| how each connection ended | {outcomes} |",
        f"| last stalled connection closed after | {result['last_closed_s']:.1f} s |",
        f"| resident memory before / peak / after | {result['before']:.0f} / {result['peak']:.0f} / "
        f"{result['after']:.0f} MiB |",
        f"| peak above before | {float(result['peak']) - float(result['before']):.0f} MiB |",
        "",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=300, help="stalled clients at once")
    parser.add_argument("--body-kib", type=int, default=512, help="body bytes each body-sender sends before stalling")
    parser.add_argument("--write", type=Path, help="update this Markdown file's section (e.g. BENCHMARKS.md)")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    text = report(args, result)
    print(text)
    if args.write:
        write_section(args.write, text, key="bench_ingress")


if __name__ == "__main__":
    main()
