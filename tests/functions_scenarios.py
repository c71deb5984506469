"""One scenario per catalog function: the world before, the alert, the exact writes, the world after.

The writes follow FUNCTIONS.md: flux's merge patch of requestedAt, kubectl's strategic-merge
restartedAt, a pod DELETE with a UID precondition, the scale subresource PUT with its
resourceVersion, cmctl's status PUT, a Job re-created without its generated selector, a Job
pinned to a node.
"""

from __future__ import annotations

from tests.functions_harness import (
    Scenario,
    certificate,
    crashing_pod,
    deployment,
    event,
    failed_job,
    flux_controller,
    flux_object,
    flux_source,
    hpa,
    pvc,
    storage_class,
)
from agent_sre.functions.permissions import FLUX_WITH_SOURCE
from tests.kube_api import PLURAL_OF, FakeKube, Request

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON = "application/json"


def _flux(kind: str, group: str, version: str, plural: str, sources: tuple[tuple[str, str], ...] = (),
          **spec: object) -> Scenario:
    """The object `apps`, and `sources` (kind, name: FLUX_SOURCES), reconciled first with
    AGENT_SRE_FUNCTIONS_FLUX_WITH_SOURCE, in that order; each with its controller."""
    def check(fake: FakeKube, writes: list[Request]) -> None:
        [patch] = writes
        stamp = patch.body["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"]
        assert patch.body == {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": stamp}}}
        obj = fake.get(kind, "apps", "flux-system")
        assert obj is not None and obj["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"] == stamp

    function = f"flux-reconcile-{kind.lower()}"
    path = f"/apis/{group}/{version}/namespaces/flux-system/{plural}/apps"
    source_paths = [f"/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/{PLURAL_OF[k]}/{n}" for k, n in sources]
    return Scenario(function, {"name": "apps", "namespace": "flux-system"},
                    [flux_object(kind, **spec), *(flux_source(k, n) for k, n in sources)],
                    [("PATCH", path, MERGE)], check,
                    controllers=tuple(flux_controller(k) for k in dict.fromkeys([kind, *(k for k, _ in sources)])),
                    opted_writes={FLUX_WITH_SOURCE: [("PATCH", p, MERGE) for p in [*source_paths, path]]})


def _pod_restart_check(fake: FakeKube, writes: list[Request]) -> None:
    [delete] = writes
    assert delete.body["preconditions"]["uid"]  # the UID the GET returned
    assert delete.body["propagationPolicy"] == "Background" and delete.body["kind"] == "DeleteOptions"
    assert fake.get("Pod", "api-7f9", "shop") is None


def _rollout_check(fake: FakeKube, writes: list[Request]) -> None:
    [patch] = writes
    annotations = patch.body["spec"]["template"]["metadata"]["annotations"]
    assert list(annotations) == ["kubectl.kubernetes.io/restartedAt"] and list(patch.body) == ["spec"]
    assert patch.query.get("fieldManager") == "agent-sre"
    template = fake.get("Deployment", "api", "shop")["spec"]["template"]  # type: ignore[index]
    assert template["metadata"]["annotations"] == annotations
    assert fake.get("Deployment", "api", "shop")["metadata"]["generation"] == 2  # type: ignore[index]


def _scale_check(fake: FakeKube, writes: list[Request]) -> None:
    [put] = writes
    assert put.body["kind"] == "Scale" and put.body["spec"]["replicas"] == 3
    assert put.body["metadata"]["resourceVersion"]  # a concurrent scale would be a 409
    assert fake.get("Deployment", "web", "shop")["spec"]["replicas"] == 3  # type: ignore[index]


def _hpa_check(fake: FakeKube, writes: list[Request]) -> None:
    [patch] = writes
    assert patch.body == {"spec": {"maxReplicas": 4}}
    assert fake.get("HorizontalPodAutoscaler", "web-hpa", "shop")["spec"]["maxReplicas"] == 4  # type: ignore[index]
    assert fake.get("Deployment", "web", "shop")["spec"]["replicas"] == 2  # type: ignore[index]


def _certificate_check(fake: FakeKube, writes: list[Request]) -> None:
    [put] = writes
    assert put.body["metadata"]["resourceVersion"]
    cert = fake.get("Certificate", "web-tls", "shop")
    assert cert is not None
    [issuing] = [c for c in cert["status"]["conditions"] if c["type"] == "Issuing"]
    assert (issuing["status"], issuing["reason"], issuing["observedGeneration"]) == ("True", "ManuallyTriggered", 2)


def _job_retry_check(fake: FakeKube, writes: list[Request]) -> None:
    [post] = writes
    name = post.body["metadata"]["name"]
    assert name.startswith("backup-123-retry-")
    assert "selector" not in post.body["spec"] and "uid" not in post.body["metadata"]
    assert post.body["spec"]["template"]["metadata"]["labels"] == {"app": "backup"}
    created = fake.get("Job", name, "shop")
    assert created is not None and created["spec"]["template"]["spec"]["containers"][0]["image"] == "backup:1"
    assert created["metadata"]["annotations"]["agent-sre.io/retry-of"] == "backup-123"


def _node_cleanup_check(fake: FakeKube, writes: list[Request]) -> None:
    [post] = writes
    pod = post.body["spec"]["template"]["spec"]
    assert pod["nodeName"] == "node-1"
    assert pod["containers"][0]["image"] == "busybox:1.37"
    assert [v["hostPath"]["path"] for v in pod["volumes"]] == ["/var/log"]
    assert fake.get("Job", post.body["metadata"]["name"], "agent-sre") is not None


NODE = {"kind": "Node", "metadata": {"name": "node-1"}, "status": {"conditions": [{"type": "DiskPressure", "status": "True"}]}}
POD = crashing_pod()
# The pod that mounts check-pvc-status's claim: the kubelet of its node reports the volume's usage.
DB_POD = {"kind": "Pod", "metadata": {"name": "db-0", "namespace": "shop", "labels": {"app": "db"}},
          "spec": {"nodeName": "node-1", "containers": [{"name": "db", "image": "postgres:17"}],
                   "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}]},
          "status": {"phase": "Running"}}
REPORTED_POD = crashing_pod("worker-5d8", service="worker")  # not pod-restart's: the e2e test runs both at once

KUSTOMIZATION = ("Kustomization", "kustomize.toolkit.fluxcd.io", "v1", "kustomizations")
HELMRELEASE = ("HelmRelease", "helm.toolkit.fluxcd.io", "v2", "helmreleases")

SCENARIOS = {
    "flux-reconcile-kustomization": _flux(*KUSTOMIZATION, (("GitRepository", "flux-system"),)),
    "flux-reconcile-gitrepository": _flux("GitRepository", "source.toolkit.fluxcd.io", "v1", "gitrepositories"),
    # the HelmChart helm-controller made of the chart template, after its HelmRepository
    "flux-reconcile-helmrelease": _flux(*HELMRELEASE, (("HelmRepository", "podinfo"), ("HelmChart", "flux-system-apps"))),
    "pod-restart": Scenario("pod-restart", {"pod": "api-7f9", "namespace": "shop"}, [POD],
                            [("DELETE", "/api/v1/namespaces/shop/pods/api-7f9", JSON)], _pod_restart_check),
    "pod-check-status": Scenario("pod-check-status", {"namespace": "shop", "service": "worker"},
                                 [REPORTED_POD, event(REPORTED_POD)], []),
    "check-pvc-status": Scenario("check-pvc-status", {"persistentvolumeclaim": "data-db-0", "namespace": "shop"},
                                 [pvc(), storage_class(), event(pvc(), "FailedMount"), DB_POD, NODE], []),
    # (`web`: the rollout restart's `api` would race it in the end-to-end test: a 409, rightly)
    "scale-pod": Scenario("scale-pod", {"deployment": "web", "namespace": "shop"}, [deployment("web")],
                          [("PUT", "/apis/apps/v1/namespaces/shop/deployments/web/scale", JSON)], _scale_check),
    "deployment-rollout-restart": Scenario(
        "deployment-rollout-restart", {"deployment": "api", "namespace": "shop"}, [deployment()],
        [("PATCH", "/apis/apps/v1/namespaces/shop/deployments/api", STRATEGIC)], _rollout_check),
    "node-disk-cleanup": Scenario("node-disk-cleanup", {"node": "node-1"}, [NODE],
                                  [("POST", "/apis/batch/v1/namespaces/agent-sre/jobs", JSON)], _node_cleanup_check),
    "certificate-renew": Scenario(
        "certificate-renew", {"name": "web-tls", "namespace": "shop"}, [certificate()],
        [("PUT", "/apis/cert-manager.io/v1/namespaces/shop/certificates/web-tls/status", JSON)], _certificate_check),
    "job-retry": Scenario("job-retry", {"job_name": "backup-123", "namespace": "shop"}, [failed_job()],
                          [("POST", "/apis/batch/v1/namespaces/shop/jobs", JSON)], _job_retry_check),
    "escalate": Scenario("escalate", {"namespace": "shop", "severity": "critical"}, [], [], needs_kube=False),
}

# scale-pod's other path: an HPA owns the Deployment, so its maxReplicas is raised instead.
SCALE_WITH_HPA = Scenario("scale-pod", {"deployment": "web", "namespace": "shop"}, [deployment("web"), hpa()],
                          [("PATCH", "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/web-hpa", MERGE)],
                          _hpa_check)


def _workload(kind: str, name: str) -> dict:
    obj = deployment(name)
    obj["kind"] = kind
    obj["spec"].pop("replicas") if kind == "DaemonSet" else None
    obj["spec"].pop("paused")
    return obj


def _rollout(kind: str, plural: str, name: str) -> Scenario:
    def check(fake: FakeKube, writes: list[Request]) -> None:
        [patch] = writes
        template = fake.get(kind, name, "shop")["spec"]["template"]  # type: ignore[index]
        assert template["metadata"]["annotations"] == patch.body["spec"]["template"]["metadata"]["annotations"]

    return Scenario("deployment-rollout-restart", {kind.lower(): name, "namespace": "shop"}, [_workload(kind, name)],
                    [("PATCH", f"/apis/apps/v1/namespaces/shop/{plural}/{name}", STRATEGIC)], check)


# deployment-rollout-restart's other kinds, named by the alert's `statefulset` / `daemonset` label.
ROLLOUT_STATEFULSET = _rollout("StatefulSet", "statefulsets", "db")
ROLLOUT_DAEMONSET = _rollout("DaemonSet", "daemonsets", "node-exporter")

# flux's other sources (with AGENT_SRE_FUNCTIONS_FLUX_WITH_SOURCE): a Kustomization's OCIRepository
# or Bucket; a HelmRelease's chart from a GitRepository or a Bucket, or its chartRef's OCIRepository.
def _chart_from(kind: str, name: str) -> dict:
    return {"chart": {"spec": {"chart": "./charts/podinfo", "sourceRef": {"kind": kind, "name": name}}}}


def _helm_chart_from(kind: str, name: str) -> Scenario:
    scenario = _flux(*HELMRELEASE, ((kind, name), ("HelmChart", "flux-system-apps")), **_chart_from(kind, name))
    scenario.objects[-1]["spec"]["sourceRef"] = {"kind": kind, "name": name}  # the HelmChart's own source
    return scenario


FLUX_SOURCE_PATHS = {
    "kustomization-oci": _flux(*KUSTOMIZATION, (("OCIRepository", "podinfo"),), path="./",
                               sourceRef={"kind": "OCIRepository", "name": "podinfo"}),
    "kustomization-bucket": _flux(*KUSTOMIZATION, (("Bucket", "fleet"),), path="./apps",
                                  sourceRef={"kind": "Bucket", "name": "fleet"}),
    "helmrelease-git-chart": _helm_chart_from("GitRepository", "flux-system"),
    "helmrelease-bucket-chart": _helm_chart_from("Bucket", "fleet"),
    "helmrelease-chartref-oci": _flux(*HELMRELEASE, (("OCIRepository", "podinfo"),),
                                      chartRef={"kind": "OCIRepository", "name": "podinfo"}),
}
EXTRA_PATHS = {"scale-pod-hpa": SCALE_WITH_HPA, "rollout-statefulset": ROLLOUT_STATEFULSET,
               "rollout-daemonset": ROLLOUT_DAEMONSET, **FLUX_SOURCE_PATHS}
