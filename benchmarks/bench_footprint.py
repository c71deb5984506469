"""How light and quick `agent-sre run` is on a fresh pod, before and after issue 23, side by side.

    python benchmarks/bench_footprint.py --rounds 2 --write BENCHMARKS.md

Two arms, run alternately in one session against the same RabbitMQ and Redis: `before`, the
source tree at `--baseline` (default: where this branch left main), exported with `git archive`,
and `after`, this tree. Each runs with PYTHONPATH set to its tree and the same installed packages.

- Start: `agent-sre run` with the default chain, Redis-shared limits and its own queue and
  exchange names. `cold`: an empty retrieval cache directory and empty XDG, HF and home
  directories, as every pod of deploy/kubernetes starts (its caches are emptyDirs); `warm`: the
  same directories again, as the cold start left them (a laptop's second start). Timed from
  spawn until `GET /readyz` answers 200; VmRSS 2 s later (steady) and VmHWM (the peak so far)
  from /proc. The OS page cache is not dropped: "cold" means the application's caches.
- Parts and decisions (`footprint_probe.py`, one process per arm): VmRSS after each part that
  `run` loads, then real alerts decided one at a time through the default chain (after a
  warm-up of 5): 200 sampled from the whole real-alert knowledge (`known` names) and the 199 of
  the `homelabs` fold's held-out sources (never-seen: `known` learns only the other folds'
  lines, so these are no table lookup; the TRM, rag and fewshot are the shipped ones).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path

import aio_pika

sys.path.insert(0, str(Path(__file__).parent))
from bench_worker import cleanup, clear_redis, machine, write_section  # noqa: E402

from agent_sre.settings import Settings  # noqa: E402

HERE = Path(__file__).resolve().parent
TREE = HERE.parent
ARMS = ("before", "after")
# Done-when of issue 23
TARGETS = {"cold_ready_s": 5.0, "rss": 400.0, "peak": 500.0, "never_seen_p95_ms": 25.0}


def export_baseline(rev: str, into: Path) -> Path:
    """The package as it was at `rev`, from git, without touching any work tree."""
    archive = subprocess.run(["git", "-C", str(TREE), "archive", "--format=tar", rev, "agent_sre"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def status(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return {"rss": fields["VmRSS"], "peak": fields["VmHWM"]}


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


async def start_once(tree: Path, home: Path, args: argparse.Namespace, log: Path) -> dict[str, float]:
    """One `agent-sre run` from spawn to ready, its memory 2 s later, then SIGTERM."""
    prefix = f"bench.footprint.{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AGENT_SRE_", "HF_", "XDG_"))}
    env.update({
        "PYTHONPATH": str(tree), "HOME": str(home / "home"), "XDG_CACHE_HOME": str(home / "xdg"),
        "HF_HOME": str(home / "hf"), "AGENT_SRE_RETRIEVAL_CACHE_DIR": str(home / "cache"),
        "AGENT_SRE_AMQP_URL": args.amqp, "AGENT_SRE_REDIS_URL": args.redis, "AGENT_SRE_REDIS_PREFIX": prefix,
        "AGENT_SRE_HTTP_PORT": str(port), "AGENT_SRE_HTTP_HOST": "127.0.0.1", "AGENT_SRE_LOG_LEVEL": "WARNING",
        "AGENT_SRE_INPUT_QUEUE": f"{prefix}.alerts", "AGENT_SRE_INPUT_EXCHANGE": f"{prefix}.alerts",
        "AGENT_SRE_OUTPUT_EXCHANGE": f"{prefix}.triggers",
    })
    for directory in ("home", "xdg", "hf"):
        (home / directory).mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-c", "from agent_sre.cli import main; main()", "run"]
    with log.open("ab") as output:
        started = time.perf_counter()
        worker = subprocess.Popen(command, env=env, cwd=home, stdout=output, stderr=output)
        try:
            while not ready(port):
                if worker.poll() is not None:
                    raise RuntimeError(f"the worker exited with {worker.returncode}; see {log}")
                if time.perf_counter() - started > args.timeout:
                    raise TimeoutError(f"not ready after {args.timeout} s; see {log}")
                await asyncio.sleep(0.05)
            ready_s = time.perf_counter() - started
            await asyncio.sleep(2.0)
            memory = status(worker.pid)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
    settings = Settings(input_queue=f"{prefix}.alerts", input_exchange=f"{prefix}.alerts",
                        output_exchange=f"{prefix}.triggers")
    connection = await aio_pika.connect_robust(args.amqp)
    await cleanup(await connection.channel(), settings)
    await connection.close()
    await clear_redis(args.redis, prefix)
    return {"ready_s": ready_s, **memory}


def probe(tree: Path, cache: Path, log: Path) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AGENT_SRE_")}
    env["PYTHONPATH"] = str(tree)
    with log.open("ab") as errors:
        out = subprocess.run([sys.executable, str(HERE / "footprint_probe.py"), "--cache", str(cache)],
                             env=env, cwd=cache.parent, stdout=subprocess.PIPE, stderr=errors, check=True)
    return json.loads(out.stdout)


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float], digits: int = 1) -> str:
    return f"{median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})" if len(values) > 1 \
        else f"{values[0]:.{digits}f}"


def report(args: argparse.Namespace, starts: dict, probes: dict, baseline: str) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Footprint of `agent-sre run` on a fresh pod, before and after (issue 23)", "",
        f"- Command: `{' '.join(['python'] + sys.argv)}`",
        f"- Machine: {machine()}; date {now}",
        f"- Arms: `before` = `{baseline}` (git archive), `after` = this tree; {args.rounds} round(s), arms alternated. "
        "Default chain, limits in Redis, `/readyz` polled every 50 ms; RSS 2 s after ready. Cold: empty retrieval, "
        "XDG, HF and home directories (a pod's emptyDirs); warm: the same directories after the cold start. "
        "Median (min–max) over rounds.", "",
        "| arm | start | ready s | RSS MiB | peak RSS MiB |", "|---|---|---|---|---|",
    ]
    for arm in ARMS:
        for mode in ("cold", "warm"):
            runs = starts[arm][mode]
            lines.append(f"| {arm} | {mode} | {spread([r['ready_s'] for r in runs])} | "
                         f"{spread([r['rss'] for r in runs], 0)} | {spread([r['peak'] for r in runs], 0)} |")
    lines += ["", "Where the memory goes (`footprint_probe.py`: VmRSS after each part, in the order `run` loads "
              "them; MiB, the increase in brackets):", "", "| part | before | after |", "|---|---|---|"]
    before, after = (probes[arm][-1] for arm in ARMS)
    for old, new in zip(before["steps"], after["steps"]):
        lines.append(f"| {new['part']} | {old['rss']:.0f} (+{old['delta']:.0f}) | {new['rss']:.0f} (+{new['delta']:.0f}) |")
    lines.append(f"| of which the rag and fewshot vectors | {before['vectors_mib']:.1f} | {after['vectors_mib']:.1f} |")
    lines.append(f"| after the {sum(d['alerts'] + 5 for d in after['decisions'].values())} decisions below "
                 f"(peak) | {before['after_decisions']['rss']:.0f} ({before['after_decisions']['peak']:.0f}) | "
                 f"{after['after_decisions']['rss']:.0f} ({after['after_decisions']['peak']:.0f}) |")
    lines += ["", f"Decisions one at a time through the default chain (ms; median (min–max) of p50 and p95 over "
              f"{args.rounds} probe run(s) per arm):", "",
              "| arm | known p50 | known p95 | never-seen p50 | never-seen p95 |", "|---|---|---|---|---|"]
    for arm in ARMS:
        cells = [spread([p["decisions"][kind][q] for p in probes[arm]])
                 for kind in ("known", "never_seen") for q in ("p50_ms", "p95_ms")]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    cold = starts["after"]["cold"]
    measured = {
        "cold_ready_s": median([r["ready_s"] for r in cold]), "rss": median([r["rss"] for r in cold]),
        "peak": median([r["peak"] for r in cold]),
        "never_seen_p95_ms": median([p["decisions"]["never_seen"]["p95_ms"] for p in probes["after"]]),
    }
    names = {"cold_ready_s": ("fresh pod ready", "s"), "rss": ("fresh pod RSS", "MiB"),
             "peak": ("fresh pod peak RSS", "MiB"), "never_seen_p95_ms": ("decision p95 on never-seen alerts", "ms")}
    lines += ["", "Targets (issue 23, the `after` arm):"]
    for key, limit in TARGETS.items():
        label, unit = names[key]
        verdict = "PASS" if measured[key] <= limit else f"MISS by {measured[key] - limit:.1f} {unit}"
        lines.append(f"- {verdict}: {label} ≤ {limit:g} {unit}: {measured[key]:.1f} {unit}")
    lines.append(f"- Embedder: before `{before['embedder']}` (transformers imported: {before['transformers']}), "
                 f"after `{after['embedder']}` (transformers imported: {after['transformers']}).")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    baseline = args.baseline or subprocess.run(["git", "-C", str(TREE), "merge-base", "HEAD", "main"],
                                               capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp:
        root = Path(tmp)
        (root / "before-tree").mkdir()
        trees = {"before": export_baseline(baseline, root / "before-tree"), "after": TREE}
        log = root / "worker.log"
        starts: dict = {arm: {"cold": [], "warm": []} for arm in ARMS}
        probes: dict = {arm: [] for arm in ARMS}
        try:
            for number in range(args.rounds):
                for arm in ARMS if number % 2 == 0 else ARMS[::-1]:
                    home = root / f"{arm}-{number}"
                    for mode in ("cold", "warm"):
                        print(f"round {number + 1}: {arm} {mode} ...", file=sys.stderr)
                        starts[arm][mode].append(await start_once(trees[arm], home, args, log))
                        print(f"  {starts[arm][mode][-1]}", file=sys.stderr)
                    print(f"round {number + 1}: {arm} parts and decisions ...", file=sys.stderr)
                    probes[arm].append(probe(trees[arm], home / "cache", log))
        except Exception:
            print(log.read_text()[-4000:] if log.exists() else "", file=sys.stderr)
            raise
    text = report(args, starts, probes, baseline[:12])
    print(text)
    if args.write:
        write_section(args.write, text, key="bench_footprint")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline", help="git revision of the `before` arm (default: merge-base of HEAD and main)")
    parser.add_argument("--amqp", default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a start may take")
    parser.add_argument("--write", type=Path, help="write the section into this file (BENCHMARKS.md)")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
