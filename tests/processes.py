"""`agent-sre run` as a real process against the test's broker names, for kill and replica tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import aio_pika

from agent_sre.settings import Settings


ROOT = Path(__file__).resolve().parents[1]
# The command as a child process: this interpreter and this tree, whatever PATH or the installed copy.
AGENT_SRE = [sys.executable, "-m", "agent_sre"]


def child_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env`, with this checkout first on the child's path: it runs the code under test."""
    path = [str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    return {**env, "PYTHONPATH": os.pathsep.join(path)}


def worker_env(settings: Settings, audit: Path, **extra: str) -> dict[str, str]:
    env = child_env({k: v for k, v in os.environ.items() if not k.startswith("AGENT_SRE_")})
    env.update(
        AGENT_SRE_AMQP_URL=settings.require_amqp_url(),
        AGENT_SRE_INPUT_EXCHANGE=settings.input_exchange,
        AGENT_SRE_INPUT_QUEUE=settings.input_queue,
        AGENT_SRE_OUTPUT_EXCHANGE=settings.output_exchange,
        AGENT_SRE_RETRY_BASE_DELAY_S=str(settings.retry_base_delay_s),
        AGENT_SRE_RETRY_MAX_DELAY_S=str(settings.retry_max_delay_s),
        AGENT_SRE_RETRY_MAX_ATTEMPTS=str(settings.retry_max_attempts),
        AGENT_SRE_PREFETCH="4",
        AGENT_SRE_CONCURRENCY="4",
        AGENT_SRE_RATE_LIMIT_BURST="100000",
        AGENT_SRE_STORM_PER_MINUTE="100000",
        AGENT_SRE_HTTP_PORT="0",
        AGENT_SRE_HTTP_HOST="127.0.0.1",
        AGENT_SRE_AUDIT_LOG=str(audit),
        AGENT_SRE_LOG_LEVEL="WARNING",
        AGENT_SRE_SELECTORS="static,rules",
    )
    env.update(extra)
    return env


def start_worker_process(settings: Settings, tmp_path: Path, name: str, **extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*AGENT_SRE, "run"],
        env=worker_env(settings, tmp_path / f"{name}.audit.jsonl", **extra),
        cwd=tmp_path,  # no stray .env file is read
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / f"{name}.log", "wb"),
    )


async def wait_for_count(
    channel: aio_pika.abc.AbstractChannel, queue: str, done: Callable[[int], bool], timeout_s: float
) -> int:
    """Poll a queue's ready-message count until `done(count)`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        declared = await channel.declare_queue(queue, passive=True)
        count = declared.declaration_result.message_count or 0
        if done(count):
            return count
        assert asyncio.get_running_loop().time() < deadline, f"{queue} stuck at {count} messages"
        await asyncio.sleep(0.01)
