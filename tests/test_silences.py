"""Silences against a real Alertmanager (Debian's prometheus-alertmanager, on a port of the test's
own): made while a remediation runs, expired when the alert resolves or the function fails."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent_sre.settings import RESULT_TYPE
from tests.conftest import _free_port, _port_open
from tests.broker_harness import crash_loop

pytestmark = pytest.mark.broker

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager with one receiver that sends nowhere; its URL."""
    assert BINARY, "no Alertmanager: apt-get install prometheus-alertmanager (.ci/run does)"
    config = tmp_path / "alertmanager.yml"
    config.write_text('route:\n  receiver: nowhere\nreceivers:\n  - name: nowhere\n')
    port = _free_port()
    process = subprocess.Popen(
        [BINARY, f"--config.file={config}", f"--storage.path={tmp_path / 'am'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not _port_open(port):
        assert process.poll() is None and time.monotonic() < deadline, "Alertmanager did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(10)


async def silences(url: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/api/v2/silences") as response:
            assert response.status == 200
            return list(await response.json())


async def test_a_remediation_silences_its_alert_until_the_alert_resolves(start_worker, alertmanager: str) -> None:
    harness = await start_worker(alertmanager_url=alertmanager)
    await harness.send(crash_loop())
    [trigger] = await harness.triggers(1)
    await harness.settled(1)
    [silence] = await silences(alertmanager)
    assert silence["status"]["state"] == "active" and silence["createdBy"] == "agent-sre"
    matchers = {(m["name"], m["value"]) for m in silence["matchers"]}
    assert matchers == set(crash_loop()["labels"].items()), "exactly the alert's labels, nothing wider"
    assert all(m["isEqual"] and not m["isRegex"] for m in silence["matchers"])
    assert trigger.headers["correlationid"] in silence["comment"] and "pod-restart" in silence["comment"]
    assert harness.sample("agent_sre_silences_total", step="created") == 1

    await harness.send({**crash_loop(), "status": "resolved"})
    await harness.settled(2)
    [silence] = await silences(alertmanager)
    assert silence["status"]["state"] == "expired"
    assert harness.sample("agent_sre_silences_total", step="expired") == 1


async def test_a_failed_remediation_lifts_its_silence_and_an_escalate_makes_none(start_worker, alertmanager: str) -> None:
    harness = await start_worker(alertmanager_url=alertmanager)
    await harness.send(crash_loop("api-1"))
    other = {"labels": {"alertname": "KubePodCrashLooping", "pod": "api-2", "namespace": "shop"},
             "annotations": {"lambda_function": "escalate"}, "startsAt": "2026-11-21T10:00:00Z"}
    await harness.send(other)
    triggers = await harness.triggers(2)
    [restart] = [t for t in triggers if t.headers["subject"] == "pod-restart"]
    await harness.settled(2)
    [silence] = await silences(alertmanager)  # a human is told about api-2: it is not silenced
    assert ("pod", "api-1") in {(m["name"], m["value"]) for m in silence["matchers"]}
    await harness.send({"correlation_id": restart.headers["correlationid"], "status": "failed", "message": "boom"},
                       event_type=RESULT_TYPE)
    await harness.settled(3)
    [silence] = await silences(alertmanager)
    assert silence["status"]["state"] == "expired"


async def test_an_unreachable_alertmanager_never_holds_back_the_trigger(start_worker) -> None:
    harness = await start_worker(alertmanager_url=f"http://127.0.0.1:{_free_port()}", alertmanager_timeout_s=1.0)
    await harness.send(crash_loop())
    [trigger] = await harness.triggers(1)
    await harness.settled(1)
    assert harness.sample("agent_sre_silences_total", step="failed") == 1
    assert harness.audit()[-1]["action"] == "published"
