"""docker-compose.yml and the Dockerfile, read as Docker would read them (no engine runs here)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import yaml  # PyYAML (the dev extra)

from agent_sre.settings import Settings
from tests.conftest import threaded_http


ROOT = Path(__file__).parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
SAMPLE_WEBHOOK = ROOT / "examples" / "alertmanager-webhook.json"
# The host's own RabbitMQ (AMQP, management) and Redis, which the broker and shared-state tests use.
LOCAL_PORTS = {5672, 15672, 6379}
_VARIABLE = re.compile(r"\$\{(\w+)(:-([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def at_defaults(text: str) -> str:
    """`${VAR:-default}` as Docker Compose reads it with nothing set."""
    return _VARIABLE.sub(lambda match: match.group(3) or "", text)


def test_the_compose_file_is_yaml_with_three_services_and_the_functions_profile(compose):
    assert set(compose) <= {"name", "services", "volumes", "networks", "configs", "secrets"}
    assert set(compose["services"]) == {"rabbitmq", "redis", "agent-sre", "functions"}
    assert {name for name, s in compose["services"].items() if "profiles" not in s} == {"rabbitmq", "redis", "agent-sre"}
    used = {mount.split(":")[0] for service in compose["services"].values() for mount in service.get("volumes", [])}
    named = {mount for mount in used if not mount.startswith(("$", ".", "/"))}  # not a bind mount
    assert named <= set(compose.get("volumes") or {})  # every named volume is declared


def test_every_variable_has_a_default_and_no_dollar_is_left_bare():
    text = COMPOSE.read_text()
    variables = _VARIABLE.findall(text)
    assert all(marker for _, marker, _ in variables)
    # Empty only for the one optional secret: the result key, unset unless you set it.
    assert [name for name, _, default in variables if not default] == ["AGENT_SRE_RESULT_KEY"] * 2
    # Compose would try to interpolate any other `$`; a literal one is written `$$`.
    assert "$" not in _VARIABLE.sub("", text).replace("$$", "")


def test_no_host_port_is_one_a_local_rabbitmq_or_redis_holds(compose):
    published = [mapping for service in compose["services"].values() for mapping in service.get("ports", [])]
    assert published
    for mapping in published:
        *address, host, _container = at_defaults(mapping).split(":")
        # Loopback only: the broker's guest/guest and an open ingress stay off the network.
        assert address == ["127.0.0.1"], mapping
        assert int(host) not in LOCAL_PORTS, mapping
    assert "ports" not in compose["services"]["redis"]  # only the containers use it


def test_the_worker_and_the_functions_share_the_result_key_from_the_shell(compose):
    worker, functions = (compose["services"][name]["environment"] for name in ("agent-sre", "functions"))
    assert worker["AGENT_SRE_RESULT_KEY"] == functions["AGENT_SRE_RESULT_KEY"] == "${AGENT_SRE_RESULT_KEY:-}"
    assert Settings(_env_file=None, result_key=at_defaults(worker["AGENT_SRE_RESULT_KEY"])).result_key is None


def test_the_worker_uses_the_compose_broker_and_redis(compose):
    worker = compose["services"]["agent-sre"]
    environment = worker["environment"]

    assert environment["AGENT_SRE_REDIS_URL"] == "redis://redis:6379/0"
    assert environment["AGENT_SRE_AMQP_URL"] == "amqp://guest:guest@rabbitmq:5672/"
    assert worker["depends_on"] == {name: {"condition": "service_healthy"} for name in ("rabbitmq", "redis")}


def test_the_functions_take_the_workers_triggers_in_dry_run_from_a_kubeconfig(compose):
    functions = compose["services"]["functions"]
    environment = functions["environment"]

    assert functions["profiles"] == ["functions"] and functions["command"] == ["functions", "consume"]
    assert functions["image"] == compose["services"]["agent-sre"]["image"]
    assert environment["AGENT_SRE_AMQP_URL"] == compose["services"]["agent-sre"]["environment"]["AGENT_SRE_AMQP_URL"]
    assert environment["AGENT_SRE_REDIS_URL"] == "redis://redis:6379/0"
    assert environment["AGENT_SRE_FUNCTIONS_DRY_RUN"] == "true"
    [mount] = functions["volumes"]
    assert at_defaults(mount).split(":")[1] == environment["KUBECONFIG"] and mount.endswith(":ro")


def test_every_file_the_compose_file_sends_exists():
    # The demo's `curl ... -d @FILE`, run from this directory.
    named = re.findall(r"-d @(\S+)", COMPOSE.read_text())
    assert named == ["examples/alertmanager-webhook.json"]
    assert all((ROOT / name).is_file() for name in named)


class _Probe(BaseHTTPRequestHandler):
    ready = False

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        ok = self.path == "/healthz" or (self.path == "/readyz" and _Probe.ready)
        self.send_response(200 if ok else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def probe_port() -> Iterator[int]:
    """A stand-in for the worker's /healthz (always 200) and /readyz (503 until `_Probe.ready`)."""
    _Probe.ready = False
    with threaded_http(_Probe) as port:
        yield port


def healthy(command: list[str], port: int) -> bool:
    environment = {**os.environ, "AGENT_SRE_HTTP_PORT": str(port)}
    return subprocess.run(command, env=environment, capture_output=True, timeout=30).returncode == 0


def test_the_compose_healthcheck_is_readiness(compose, probe_port):
    kind, *command = compose["services"]["agent-sre"]["healthcheck"]["test"]
    assert kind == "CMD" and command[0] == "python"
    command[0] = sys.executable  # the image's python is on PATH; here, the tests' own

    # Given a worker that is alive but not ready (no broker): unhealthy, then healthy once ready.
    assert not healthy(command, probe_port)
    _Probe.ready = True
    assert healthy(command, probe_port)


def test_the_image_healthcheck_is_readiness(probe_port):
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    [line] = [line for line in text.splitlines() if line.startswith("HEALTHCHECK")]
    shell_command = line.split(" CMD ", 1)[1].replace("python -c", f"{sys.executable} -c", 1)

    assert not healthy(["sh", "-c", shell_command], probe_port)
    _Probe.ready = True
    assert healthy(["sh", "-c", shell_command], probe_port)


def test_the_dockerfile_copies_what_exists_and_runs_as_the_user_it_creates():
    text = DOCKERFILE.read_text()
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for sources in re.findall(r"^COPY (.+) \S+$", text, flags=re.MULTILINE):
        for source in sources.split():
            assert (ROOT / source).exists() and source not in ignored, source
    [uid] = re.findall(r"useradd .*--uid (\d+)", text)
    assert re.search(rf"^USER {uid}$", text, flags=re.MULTILINE)
