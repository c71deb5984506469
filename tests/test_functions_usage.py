"""Usage in the read-only reports (agent_sre/functions/usage.py), against the fake_kube API's kubelet
stats summary and metrics.k8s.io (tests/kube_usage.py): the figures when the cluster gives them,
and a report that still succeeds, saying why, when it does not. A claim's usage is read only with
AGENT_SRE_FUNCTIONS_KUBELET_STATS on; off (the default), no kubelet is called at all."""

from __future__ import annotations

import copy

import pytest

from agent_sre.functions.result import Status
from agent_sre.functions.usage import KUBELET_STATS_OFF
from tests.functions_harness import runner_for, trigger_for
from tests.functions_scenarios import DB_POD, SCENARIOS
from tests.kube_api import FakeKube
from tests.kube_rbac import Grant

PVC = SCENARIOS["check-pvc-status"]
PODS = SCENARIOS["pod-check-status"]
SUMMARY = "/api/v1/nodes/node-1/proxy/stats/summary"


async def _report(fake_kube: FakeKube, tmp_path, scenario=PVC, kubelet_stats=True):
    runner = await runner_for(fake_kube, tmp_path, functions_kubelet_stats=kubelet_stats)
    result = await runner.run(trigger_for(scenario.function, scenario.labels))
    assert result is not None and result.status is Status.SUCCEEDED, result  # usage or not, the report succeeds
    assert fake_kube.writes == []
    return result


async def test_a_claims_usage_comes_from_the_kubelet_of_the_node_that_mounts_it(fake_kube, tmp_path):
    PVC.seed(fake_kube)
    result = await _report(fake_kube, tmp_path)
    usage = result.report["usage"]
    assert (usage["node"], usage["pod"]) == ("node-1", "db-0")
    assert (usage["capacityBytes"], usage["usedBytes"], usage["availableBytes"]) == (10 * 2**30, 8 * 2**30, 2 * 2**30)
    assert (usage["inodes"], usage["inodesUsed"], usage["inodesFree"]) == (655_360, 55_360, 600_000)
    assert "8.0 GiB used of 10.0 GiB, 20% free" in result.message
    assert [r.path for r in fake_kube.requests if "proxy" in r.path] == [SUMMARY]


async def test_by_default_kubelet_stats_are_off_and_no_kubelet_is_called(fake_kube, tmp_path):
    # Given an API that would allow and answer everything, and the default settings
    PVC.seed(fake_kube)
    result = await _report(fake_kube, tmp_path, kubelet_stats=False)
    assert result.report["usage"] == {"unavailable": KUBELET_STATS_OFF}
    assert result.message.endswith(f"usage unavailable: {KUBELET_STATS_OFF}")
    for named in ("AGENT_SRE_FUNCTIONS_KUBELET_STATS=true", "get nodes/proxy", "components/kubelet-stats"):
        assert named in result.message
    assert not [r.path for r in fake_kube.requests if "proxy" in r.path or r.path.endswith("/pods")]
    assert result.report["phase"] == "Bound" and result.report["events"][0]["reason"] == "FailedMount"


async def test_pod_usage_is_metrics_servers_per_container(fake_kube, tmp_path):
    PODS.seed(fake_kube)
    result = await _report(fake_kube, tmp_path, PODS)
    [pod] = result.report["pods"]
    assert pod["usage"]["containers"] == [{"name": "api", "cpu": "120000000n", "memory": "204800Ki"}]
    [metrics] = [r for r in fake_kube.requests if r.path.startswith("/apis/metrics.k8s.io/")]
    assert (metrics.path, metrics.query) == ("/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods",
                                             {"labelSelector": "service=worker"})
    assert not any("proxy" in r.path for r in fake_kube.requests), "pods need no kubelet access"


def _without_db_pod(fake_kube: FakeKube) -> None:
    del fake_kube.objects[("", "pods", "shop", "db-0")]


def _pending_db_pod(fake_kube: FakeKube) -> None:
    fake_kube.add({**copy.deepcopy(DB_POD), "status": {"phase": "Pending"}})


def _node_gone(fake_kube: FakeKube) -> None:
    del fake_kube.objects[("", "nodes", None, "node-1")]


@pytest.mark.parametrize(("change", "why"), [
    (_without_db_pod, "no running pod mounts it"),
    (_pending_db_pod, "no running pod mounts it"),
    (_node_gone, 'the kubelet\'s stats summary on node-1 answered 404 NotFound: nodes "node-1" not found'),
])
async def test_without_figures_a_claims_report_says_why(fake_kube, tmp_path, change, why):
    PVC.seed(fake_kube)
    change(fake_kube)
    result = await _report(fake_kube, tmp_path)
    assert why in result.report["usage"]["unavailable"] and f"usage unavailable: {why}" in result.message
    assert result.report["phase"] == "Bound"


async def test_a_role_without_nodes_proxy_or_metrics_still_reports(fake_kube, tmp_path):
    # Given a role that may read everything but the kubelet and metrics.k8s.io
    everything_else = ({"apiGroups": [""], "resources": ["persistentvolumeclaims", "pods", "events"],
                        "verbs": ["get", "list"]},)
    fake_kube.grants = [Grant(everything_else, None)]
    PVC.seed(fake_kube)
    PODS.seed(fake_kube)
    claim = await _report(fake_kube, tmp_path)
    pods = await _report(fake_kube, tmp_path, PODS)
    assert "403 Forbidden" in claim.report["usage"]["unavailable"]
    assert "the function's role does not grant it" in claim.message
    [pod] = pods.report["pods"]
    assert pod["usage"]["unavailable"].startswith("metrics.k8s.io answered 403 Forbidden")
    assert "usage unavailable: metrics.k8s.io answered 403" in pods.message
    assert ("get", "nodes/proxy", None) in fake_kube.forbidden and ("list", "pods", "shop") in fake_kube.forbidden
