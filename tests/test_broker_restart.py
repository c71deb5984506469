"""Restart the broker under the worker mid-stream: a RabbitMQ node of the test's own (never the
shared one), 10,000 alerts, `agent-sre run` as a real process. Nothing may be lost."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import orjson
import pytest
from conftest import _free_port, _port_open
from processes import start_worker_process, wait_for_count
from pydantic import SecretStr

from agent_sre.cli.send import Encoding, encode_event
from agent_sre.settings import DEFAULT_EVENT_TYPE, Settings
from agent_sre.worker.topology import declare, dlq_name

pytestmark = pytest.mark.broker

N = 10_000


class OwnRabbit:
    """rabbitmq-server with its own node name, port, config and data directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.node = f"agentsre-{self.port}@localhost"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "enabled_plugins").write_text("[].\n")
        (directory / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        if os.geteuid() == 0:  # the Debian wrapper drops to the rabbitmq user, who must own its files
            for path in [directory, *directory.rglob("*")]:
                shutil.chown(path, "rabbitmq", "rabbitmq")
        self.env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(_free_port()),
            "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(directory / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq.conf"),
            "RABBITMQ_PID_FILE": str(directory / "pid"),
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def start(self) -> None:
        self.process = subprocess.Popen(["rabbitmq-server"], env=self.env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while subprocess.run(["rabbitmqctl", "-q", "-n", self.node, "await_startup"], env=self.env,
                             capture_output=True, timeout=120).returncode != 0:  # not registered yet
            assert self.process.poll() is None, f"rabbitmq-server exited; see {self.directory / 'log'}"
            assert time.monotonic() < deadline, "the test's RabbitMQ did not start"
            time.sleep(0.5)
        deadline = time.monotonic() + 30
        while not _port_open(self.port):
            assert time.monotonic() < deadline, "the test's RabbitMQ does not listen"
            time.sleep(0.1)

    def stop(self) -> None:
        self._ctl("stop", timeout_s=60)
        if self.process is not None:
            self.process.wait(60)
            self.process = None

    def _ctl(self, command: str, timeout_s: float) -> None:
        subprocess.run(["rabbitmqctl", "-q", "-n", self.node, command], env=self.env, check=True,
                       capture_output=True, timeout=timeout_s)


@pytest.fixture
def own_rabbit() -> Iterator[OwnRabbit]:
    if shutil.which("rabbitmq-server") is None:
        pytest.fail("rabbitmq-server is not installed: the restart test needs a RabbitMQ node of its own")
    # Not under pytest's tmp_path: the rabbitmq user cannot enter root's private directories.
    directory = Path(tempfile.mkdtemp(prefix="agent-sre-rabbit-"))
    rabbit = OwnRabbit(directory)
    try:
        rabbit.start()
        yield rabbit
    finally:
        if rabbit.process is not None:
            rabbit.stop()
        shutil.rmtree(directory, ignore_errors=True)


async def test_a_broker_restart_mid_stream_loses_none_of_10000_alerts(
    own_rabbit: OwnRabbit, broker_settings: Settings, tmp_path: Path
) -> None:
    settings = broker_settings.model_copy(update={"amqp_url": SecretStr(own_rabbit.url)})
    # Given 10,000 distinct alerts waiting in the input queue
    connection = await aio_pika.connect(own_rabbit.url)
    channel = await connection.channel(publisher_confirms=True)
    topology = await declare(channel, settings)
    capture = await channel.declare_queue(f"{settings.output_exchange}.capture", durable=True)
    await capture.bind(topology.output_exchange, routing_key="")
    for start in range(0, N, 500):
        await asyncio.gather(*(
            topology.input_exchange.publish(encode_event(
                {"labels": {"alertname": "KubePodCrashLooping", "pod": f"api-{n}", "namespace": "shop"},
                 "annotations": {"lambda_function": "pod-restart"}, "startsAt": "2026-11-21T10:00:00Z"},
                event_type=DEFAULT_EVENT_TYPE, encoding=Encoding.knative,
            ), routing_key="")
            for n in range(start, min(start + 500, N))
        ))
    await connection.close()

    # When the broker is restarted while the worker is a fifth of the way through
    worker = start_worker_process(settings, tmp_path, "worker", AGENT_SRE_PREFETCH="32", AGENT_SRE_CONCURRENCY="16")
    try:
        connection = await aio_pika.connect(own_rabbit.url)
        channel = await connection.channel()
        await wait_for_count(channel, capture.name, lambda count: count >= N // 5, timeout_s=120)
        await connection.close()
        own_rabbit.stop()
        own_rabbit.start()

        # Then the worker reconnects by itself and every alert gets its trigger; nothing is dead-lettered
        connection = await aio_pika.connect(own_rabbit.url)
        channel = await connection.channel()
        await wait_for_count(channel, capture.name, lambda count: count >= N, timeout_s=180)
        await wait_for_count(channel, settings.input_queue, lambda count: count == 0, timeout_s=30)
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(30)
    assert code == 0, (tmp_path / "worker.log").read_text()
    pods: dict[str, int] = {}
    queue = await channel.get_queue(capture.name)
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        pod = orjson.loads(message.body)["parameters"]["name"]
        pods[pod] = pods.get(pod, 0) + 1
    assert len(pods) == N, f"{N - len(pods)} alerts lost"
    # Only deliveries in hand when the connection went (at most the prefetch) can trigger twice.
    assert sum(pods.values()) - N <= 32
    assert await wait_for_count(channel, dlq_name(settings.input_queue), lambda _: True, 1) == 0
    await connection.close()
