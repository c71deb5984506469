"""Least privilege, proven: each function runs against an API that enforces the RBAC rules that
`kubectl kustomize deploy/kubernetes/overlays/functions` renders for its ServiceAccount.

With exactly those rules it succeeds; with any single verb on any single resource taken away it
does not, and the API answered 403 to it. A rule nobody needs would fail the second half. (A
report's usage and a claim's expansion are best effort: without the right to read them, the
report still succeeds but says they are unavailable, which counts as not working here.) Both hold
in each mode: the default (every opt-in off, usage "off" expected) and each opt-in on, rendered
with its Component.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from agent_sre.functions.manifests import account
from agent_sre.functions.permissions import OPT_INS, PERMISSIONS, component_of
from agent_sre.functions.result import Status
from agent_sre.functions.usage import KUBELET_STATS_OFF
from tests.functions_harness import runner_for, trigger_for
from tests.functions_scenarios import EXTRA_PATHS, SCENARIOS, Scenario
from tests.kube_api import FakeKube
from tests.kube_rbac import Grant, grants_of, without_one
from tests.test_deploy import DEPLOY, kubectl

OVERLAY = DEPLOY / "overlays" / "functions"
COMPONENTS = DEPLOY / "components"
NAMESPACE = "agent-sre"
# Each function's scenarios: together they take every path that needs a right (scale-pod's HPA,
# rollout restart's three kinds).
PATHS: dict[str, list[Scenario]] = {name: [scenario] for name, scenario in SCENARIOS.items()}
for extra in EXTRA_PATHS.values():
    PATHS[extra.function].append(extra)
# Per mode, the settings the functions run with: "default", or one opt-in on (its Component's name).
MODES: dict[str, dict[str, bool]] = {"default": {}, **{component_of(o): {o: True} for o in OPT_INS}}
CASES = [(name, "default") for name in sorted(PATHS)] + [
    (name, component_of(o)) for o in OPT_INS for name in sorted(PATHS) if PERMISSIONS[name].opted(o)]


@functools.cache
def kustomize(overlay: Path, *components: str) -> tuple[dict, ...]:
    """`kubectl kustomize` of the overlay, or of an overlay of it with these Components, as a user
    enables one (paths relative: kustomize takes no absolute ones)."""
    with tempfile.TemporaryDirectory() as top:
        root = overlay
        if components:
            root = Path(top)
            listed = [os.path.relpath(COMPONENTS / c, top) for c in components]
            (root / "kustomization.yaml").write_text(yaml.safe_dump(
                {"resources": [os.path.relpath(overlay, top)], "components": listed}))
        done = subprocess.run([kubectl(), "kustomize", str(root)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def rendered(mode: str = "default") -> tuple[dict, ...]:
    return kustomize(OVERLAY) if mode == "default" else kustomize(OVERLAY, mode)


def grants(function: str, mode: str = "default") -> list[Grant]:
    return grants_of(list(rendered(mode)), account(function), NAMESPACE)


def _degraded(report: object, mode: str) -> bool:
    """A usage figure or a claim's expansion the report had to do without (by default, kubelet
    stats are off: expected)."""
    if isinstance(report, dict):
        expected = mode == "default" and report.get("unavailable") == KUBELET_STATS_OFF
        return ("unavailable" in report and not expected) or any(_degraded(v, mode) for v in report.values())
    return isinstance(report, list) and any(_degraded(v, mode) for v in report)


async def _run(tmp_path, scenario: Scenario, granted: list[Grant], mode: str) -> tuple[Status, FakeKube]:
    fake = FakeKube(grants=granted, user=f"system:serviceaccount:{NAMESPACE}:{account(scenario.function)}")
    await fake.start()
    try:
        scenario.seed(fake)
        runner = await runner_for(fake, tmp_path, **MODES[mode])
        result = await runner.run(trigger_for(scenario.function, scenario.labels))
        assert result is not None
        return Status.FAILED if _degraded(result.report, mode) else result.status, fake
    finally:
        await fake.close()


@pytest.mark.parametrize(("name", "mode"), CASES)
async def test_the_rendered_role_is_enough(tmp_path, name, mode):
    for scenario in PATHS[name]:
        status, fake = await _run(tmp_path, scenario, grants(name, mode), mode)
        assert status is Status.SUCCEEDED, [(r.method, r.path) for r in fake.requests]
        assert [(r.method, r.path) for r in fake.writes] == [w[:2] for w in scenario.writes_with(MODES[mode])]


@pytest.mark.parametrize(("name", "mode"), [(n, m) for n, m in CASES if grants(n, m)])
async def test_every_rule_of_the_role_is_needed(tmp_path, name, mode):
    for taken, fewer in without_one(grants(name, mode)):
        outcomes = [await _run(tmp_path, scenario, fewer, mode) for scenario in PATHS[name]]
        assert any(status is not Status.SUCCEEDED for status, _ in outcomes), f"{name} works without {taken}"
        forbidden = [denied for _, fake in outcomes for denied in fake.forbidden]
        verb, resource = taken.split(" ")[0], taken.split(":")[1]
        assert (verb, resource) in [(v, r) for v, r, _ in forbidden], (taken, forbidden)


def test_escalate_holds_no_right_and_no_token():
    assert grants("escalate") == []
    [deployment] = [d for d in rendered() if d["kind"] == "Deployment" and d["metadata"]["name"] == account("escalate")]
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


@pytest.mark.parametrize("mode", MODES)
def test_no_function_may_read_secrets_or_touch_rbac(mode):
    for doc in rendered(mode):
        for rule in doc.get("rules", []) if doc["kind"] in ("Role", "ClusterRole") else []:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], doc["metadata"]["name"]
            assert "secrets" not in rule["resources"], doc["metadata"]["name"]
            assert "rbac.authorization.k8s.io" not in rule["apiGroups"], doc["metadata"]["name"]
