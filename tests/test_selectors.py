"""The built-in selectors: `static` annotations, and the `rules` table on day-one alerts."""

from __future__ import annotations

import pytest

from agent_sre.schemas.alert import Alert
from agent_sre.schemas.catalog import load_catalog
from agent_sre.schemas.decision import Outcome
from agent_sre.selectors.base import SelectorContext, available_selectors, create_selectors
from agent_sre.selectors.chain import Chain
from agent_sre.selectors.rules import RulesSelector
from agent_sre.selectors.static import StaticSelector
from agent_sre.settings import Settings

# The rules table alone, without the second selector a risky function needs by default
# (tests/test_gates.py covers that): these tests are about what the table maps.
SETTINGS = Settings(agreement_risks=[])
CATALOG = load_catalog()
CONTEXT = SelectorContext(SETTINGS, CATALOG)

# Target labels that kube-prometheus-stack's kube-state-metrics scrape adds to its alerts. Its own
# `pod` stays on alerts whose metric has none, so a parameter must never take it by mistake.
KSM = {
    "container": "kube-state-metrics",
    "endpoint": "http",
    "instance": "10.42.0.17:8080",
    "job": "kube-state-metrics",
    "pod": "kube-prometheus-stack-kube-state-metrics-6d8f7c9b5-x2x7q",
    "service": "kube-prometheus-stack-kube-state-metrics",
    "prometheus": "monitoring/kube-prometheus-stack-prometheus",
    "severity": "warning",
}
KUBELET = {
    "endpoint": "https-metrics",
    "instance": "192.168.1.21:10250",
    "job": "kubelet",
    "metrics_path": "/metrics",
    "node": "worker-1",
    "service": "kube-prometheus-stack-kubelet",
    "severity": "warning",
}
NODE_EXPORTER = {
    "container": "node-exporter",
    "endpoint": "http-metrics",
    "job": "node-exporter",
    "namespace": "monitoring",
    "pod": "kube-prometheus-stack-prometheus-node-exporter-7kq2m",
    "service": "kube-prometheus-stack-prometheus-node-exporter",
    "severity": "warning",
}
FS = {"instance": "node-1:9100", "mountpoint": "/", "device": "/dev/sda1", "fstype": "ext4"}


def alert(alertname: str, labels: dict[str, str], summary: str | None = None, **annotations: str) -> Alert:
    if summary is not None:
        annotations["summary"] = summary
    return Alert(labels={"alertname": alertname, **labels}, annotations=annotations)


async def decide(target: Alert, *names: str) -> object:
    chain = Chain(create_selectors(list(names or ("rules",)), CONTEXT), CATALOG, SETTINGS)
    return await chain.decide(target)


def test_both_builtins_are_registered_entry_points() -> None:
    installed = available_selectors()

    assert {"static", "rules"} <= set(installed)
    assert [s.name for s in create_selectors(["static", "rules"], CONTEXT)] == ["static", "rules"]


# static


async def test_static_with_parameters() -> None:
    target = alert(
        "Anything",
        {"pod": "api-1", "namespace": "shop"},
        lambda_function="pod-restart",
        lambda_parameters='{"name": "api-1", "namespace": "shop"}',
    )

    proposal = await StaticSelector().select(target)

    assert proposal is not None
    assert proposal.lambda_function == "pod-restart"
    assert proposal.parameters == {"name": "api-1", "namespace": "shop"}
    assert proposal.confidence == 1.0


async def test_static_without_parameters_leaves_them_to_the_chain() -> None:
    labels = {"name": "homepage", "namespace": "flux-system"}
    target = alert("Anything", labels, lambda_function=" flux-reconcile-helmrelease ")

    proposal = await StaticSelector().select(target)
    decision = await decide(target, "static")

    assert proposal is not None
    assert proposal.lambda_function == "flux-reconcile-helmrelease"
    assert proposal.parameters == {}
    assert decision.parameters == {"name": "homepage", "namespace": "flux-system"}


@pytest.mark.parametrize("annotations", [{}, {"lambda_function": ""}, {"lambda_function": "  "}, {"summary": "x"}])
async def test_static_abstains_without_the_annotation(annotations: dict[str, str]) -> None:
    assert await StaticSelector().select(alert("Anything", {}, **annotations)) is None


@pytest.mark.parametrize(
    "raw",
    ["{not json", '["api-1"]', '{"name": 3}', '{"name": null}', '"api-1"'],
)
async def test_static_bad_parameters_raise_and_the_chain_falls_through(raw: str) -> None:
    target = alert("KubePodCrashLooping", {"pod": "api-1", "namespace": "shop"}, lambda_function="pod-restart",
                   lambda_parameters=raw)

    with pytest.raises(ValueError, match="lambda_parameters"):
        await StaticSelector().select(target)
    decision = await decide(target, "static", "rules")

    assert [p.outcome for p in decision.phases] == [Outcome.ERROR, Outcome.DECIDED]
    assert decision.method == "rules"


async def test_static_parameters_not_in_the_labels_are_rejected_by_the_chain() -> None:
    target = alert(
        "Anything",
        {"pod": "api-1", "namespace": "shop"},
        lambda_function="pod-restart",
        lambda_parameters='{"name": "payments-0", "namespace": "shop"}',
    )

    decision = await decide(target, "static")

    assert decision.undecided
    assert decision.phases[0].outcome is Outcome.REJECTED
    assert "payments-0" in decision.phases[0].detail


async def test_static_unknown_function_is_rejected_by_the_chain() -> None:
    decision = await decide(alert("Anything", {}, lambda_function="rm-rf"), "static")

    assert decision.undecided
    assert decision.phases[0].outcome is Outcome.REJECTED


# rules: what a kube-prometheus-stack + Flux + cert-manager + node-exporter user sees on day one,
# with the label sets those alerts really carry.
DAY_ONE = [
    # kubernetes-mixin (kube-state-metrics and kubelet)
    ("KubePodCrashLooping", {**KSM, "pod": "api-7d9f-abcde", "namespace": "shop", "container": "api",
                             "reason": "CrashLoopBackOff", "uid": "3f2a"},
     "pod-restart", {"name": "api-7d9f-abcde", "namespace": "shop", "type": "CrashLoopBackOff"}),
    ("KubePodNotReady", {"pod": "api-7d9f-abcde", "namespace": "shop", "severity": "warning"},
     "pod-restart", {"name": "api-7d9f-abcde", "namespace": "shop"}),
    ("KubeContainerWaiting", {"pod": "api-7d9f-abcde", "namespace": "shop", "container": "api", "severity": "warning"},
     "pod-restart", {"name": "api-7d9f-abcde", "namespace": "shop"}),
    ("KubeDeploymentReplicasMismatch", {**KSM, "deployment": "api", "namespace": "shop"},
     "deployment-rollout-restart", {"name": "api", "namespace": "shop", "kind": "deployment"}),
    ("KubeDeploymentRolloutStuck", {**KSM, "deployment": "api", "namespace": "shop", "condition": "Progressing"},
     "deployment-rollout-restart", {"name": "api", "namespace": "shop", "kind": "deployment"}),
    # an app's StatefulSet; a database's is never restarted by a robot (tests/test_stateful.py)
    ("KubeStatefulSetReplicasMismatch", {**KSM, "statefulset": "paperless", "namespace": "docs"},
     "deployment-rollout-restart", {"name": "paperless", "namespace": "docs", "kind": "statefulset"}),
    ("KubeDaemonSetRolloutStuck", {**KSM, "daemonset": "fluent-bit", "namespace": "logging"},
     "deployment-rollout-restart", {"name": "fluent-bit", "namespace": "logging", "kind": "daemonset"}),
    ("KubeHpaMaxedOut", {**KSM, "horizontalpodautoscaler": "api", "namespace": "shop"},
     "scale-pod", {"name": "api", "namespace": "shop"}),
    ("KubeJobFailed", {**KSM, "job_name": "backup-29371200", "namespace": "ops", "condition": "true"},
     "job-retry", {"name": "backup-29371200", "namespace": "ops"}),
    ("KubePersistentVolumeFillingUp", {**KUBELET, "persistentvolumeclaim": "data-postgres-0", "namespace": "db"},
     "check-pvc-status", {"name": "data-postgres-0", "namespace": "db"}),
    ("KubePersistentVolumeInodesFillingUp", {**KUBELET, "persistentvolumeclaim": "data-postgres-0", "namespace": "db"},
     "check-pvc-status", {"name": "data-postgres-0", "namespace": "db"}),
    ("KubeNodePressure", {**KSM, "node": "worker-1", "condition": "DiskPressure", "status": "true"},
     "node-disk-cleanup", {"node": "worker-1"}),
    # node-exporter mixin
    ("NodeFilesystemSpaceFillingUp", {**NODE_EXPORTER, **FS}, "node-disk-cleanup", {"node": "node-1"}),
    ("NodeFilesystemAlmostOutOfSpace", {**NODE_EXPORTER, **FS}, "node-disk-cleanup", {"node": "node-1"}),
    ("NodeFilesystemFilesFillingUp", {**NODE_EXPORTER, **FS}, "node-disk-cleanup", {"node": "node-1"}),
    ("NodeFilesystemAlmostOutOfFiles", {**NODE_EXPORTER, **FS, "instance": "node-2"}, "node-disk-cleanup",
     {"node": "node-2"}),
    # kube-prometheus general rules
    ("TargetDown", {"job": "api", "namespace": "shop", "service": "api", "severity": "warning"},
     "pod-check-status", {"namespace": "shop", "selector": "service=api"}),
    # Flux (gotk_reconcile_condition, grouped by exported_namespace, name, kind)
    ("ReconciliationFailure", {"kind": "Kustomization", "name": "apps", "exported_namespace": "flux-system"},
     "flux-reconcile-kustomization", {"name": "apps", "namespace": "flux-system"}),
    ("ReconciliationFailure", {"kind": "HelmRelease", "name": "podinfo", "exported_namespace": "podinfo"},
     "flux-reconcile-helmrelease", {"name": "podinfo", "namespace": "podinfo"}),
    ("ReconciliationFailure", {"kind": "GitRepository", "name": "flux-system", "exported_namespace": "flux-system"},
     "flux-reconcile-gitrepository", {"name": "flux-system", "namespace": "flux-system"}),
    # the same alert from a mixin that groups by `namespace` and misspells its name
    ("FluxReconcilationFailed", {"kind": "HelmRelease", "name": "podinfo", "namespace": "podinfo"},
     "flux-reconcile-helmrelease", {"name": "podinfo", "namespace": "podinfo"}),
    # Flux >= 2.1 through kube-state-metrics' gotk_resource_info
    ("FluxReconciliationFailure", {"customresource_kind": "HelmRelease", "name": "podinfo",
                                   "exported_namespace": "podinfo", "namespace": "monitoring"},
     "flux-reconcile-helmrelease", {"name": "podinfo", "namespace": "podinfo"}),
    # cert-manager mixin (grouped by exported_namespace, namespace, name, or plainly name, namespace)
    ("CertManagerCertExpirySoon", {"name": "shop-tls", "namespace": "shop", "severity": "warning"},
     "certificate-renew", {"name": "shop-tls", "namespace": "shop"}),
    ("CertManagerCertExpirySoon", {"name": "shop-tls", "exported_namespace": "shop", "namespace": "cert-manager"},
     "certificate-renew", {"name": "shop-tls", "namespace": "shop"}),
    ("CertManagerCertNotReady", {"name": "shop-tls", "exported_namespace": "shop", "namespace": "cert-manager",
                                 "condition": "False"},
     "certificate-renew", {"name": "shop-tls", "namespace": "shop"}),
    # no safe automation: a human decides
    ("KubeAPIDown", {"severity": "critical"}, "escalate", {}),
    ("KubeAPIErrorBudgetBurn", {"long": "1h", "short": "5m", "severity": "critical"}, "escalate", {}),
    ("etcdInsufficientMembers", {"job": "kube-etcd", "severity": "critical"}, "escalate", {}),
    ("etcdNoLeader", {"job": "kube-etcd", "instance": "192.168.1.10:2381"}, "escalate", {}),
    ("KubeNodeNotReady", {**KSM, "node": "worker-3", "condition": "Ready", "status": "true"}, "escalate", {}),
    ("KubeNodeUnreachable", {**KSM, "node": "worker-3"}, "escalate", {}),
    ("KubeNodePressure", {**KSM, "node": "worker-1", "condition": "MemoryPressure", "status": "true"}, "escalate", {}),
    ("KubeletDown", {"severity": "critical"}, "escalate", {}),
    ("KubeletPlegDurationHigh", {**KUBELET, "quantile": "0.99"}, "escalate", {}),
    ("KubeClientCertificateExpiration", {"job": "apiserver"}, "escalate", {}),
    ("KubeCPUOvercommit", {"severity": "warning"}, "escalate", {}),
    ("KubeJobNotCompleted", {**KSM, "job_name": "backup-29371200", "namespace": "ops"}, "escalate", {}),
    ("KubePersistentVolumeErrors", {**KSM, "persistentvolume": "pvc-3f2a", "phase": "Failed"}, "escalate", {}),
    ("CPUThrottlingHigh", {"container": "api", "pod": "api-1", "namespace": "shop"}, "escalate", {}),
    ("Watchdog", {"severity": "none"}, None, {}),  # ignored: it needs nobody
    ("InfoInhibitor", {"severity": "none", "namespace": "shop"}, None, {}),
    ("NodeRAIDDegraded", {**NODE_EXPORTER, "device": "md0", "instance": "node-1:9100"}, "escalate", {}),
    ("NodeClockNotSynchronising", {**NODE_EXPORTER, "instance": "node-1:9100"}, "escalate", {}),
    ("NodeMemoryHighUtilization", {**NODE_EXPORTER, "instance": "node-1:9100"}, "escalate", {}),
    ("NodeDiskIOSaturation", {**NODE_EXPORTER, "device": "sda", "instance": "node-1:9100"}, "escalate", {}),
    ("PostgresqlDown", {"instance": "postgres:9187", "job": "postgres", "namespace": "db"}, "escalate", {}),
    ("PrometheusRuleFailures", {"namespace": "monitoring", "pod": "prometheus-0"}, "escalate", {}),
    ("AlertmanagerFailedToSendAlerts", {"namespace": "monitoring", "integration": "webhook"}, "escalate", {}),
    ("CertManagerAbsent", {"severity": "critical"}, "escalate", {}),
    # the seeds' homelab names
    ("FluxReconciliationFailure", {"name": "homepage", "namespace": "flux-system", "kind": "Kustomization"},
     "flux-reconcile-kustomization", {"name": "homepage", "namespace": "flux-system"}),
    ("FluxReconciliationFailure", {"name": "homepage", "namespace": "flux-system"},
     "flux-reconcile-kustomization", {"name": "homepage", "namespace": "flux-system"}),
    ("FluxGitRepositoryOutOfSync", {"name": "flux-system", "namespace": "flux-system"},
     "flux-reconcile-gitrepository", {"name": "flux-system", "namespace": "flux-system"}),
    ("FluxHelmReleaseFailing", {"name": "grafana", "namespace": "monitoring"},
     "flux-reconcile-helmrelease", {"name": "grafana", "namespace": "monitoring"}),
    ("PodCrashLoopBackOff", {"pod": "homepage-5f6d-xyz", "namespace": "homepage", "reason": "CrashLoopBackOff"},
     "pod-restart", {"name": "homepage-5f6d-xyz", "namespace": "homepage", "type": "CrashLoopBackOff"}),
    ("PrometheusServiceDown", {"namespace": "monitoring", "service": "prometheus-operated"},
     "pod-check-status", {"namespace": "monitoring", "selector": "service=prometheus-operated"}),
    ("PersistentVolumeFillingUpCritical", {"persistentvolumeclaim": "data-loki-0", "namespace": "logging"},
     "check-pvc-status", {"name": "data-loki-0", "namespace": "logging"}),
]


@pytest.mark.parametrize(
    ("alertname", "labels", "function", "parameters"),
    DAY_ONE,
    ids=[f"{row[0]}-{row[2]}-{index}" for index, row in enumerate(DAY_ONE)],
)
async def test_day_one_alerts_map_to_the_right_function(
    alertname: str, labels: dict[str, str], function: str | None, parameters: dict[str, str]
) -> None:
    decision = await decide(alert(alertname, labels))

    assert decision.lambda_function == function, decision.reasoning
    assert decision.parameters == parameters
    if function is None:
        assert decision.ignored and decision.method == "ignore"
        return
    assert decision.method == "rules"
    assert decision.confidence >= SETTINGS.selector_threshold


CPU = {"pod": "app-xyz", "namespace": "production"}


@pytest.mark.parametrize(
    "summary",
    [
        "CPU at 85% while request traffic keeps growing",
        "High CPU under growing traffic",
        "Request rate increased to 1000 req/s",
        "CPU high: traffic spike",
        "Surging requests saturate the pod's CPU",
    ],
)
async def test_pod_cpu_high_under_growing_traffic_scales(summary: str) -> None:
    decision = await decide(alert("PodCPUHigh", CPU, summary))

    assert decision.lambda_function == "scale-pod"
    assert decision.parameters == {"name": "app-xyz", "namespace": "production"}


@pytest.mark.parametrize("summary", [None, "CPU at 95% for 10 minutes", "Busy loop suspected; traffic is flat"])
async def test_pod_cpu_high_without_growing_traffic_restarts(summary: str | None) -> None:
    decision = await decide(alert("PodCPUHigh", CPU, summary))

    assert decision.lambda_function == "pod-restart"
    assert decision.parameters == {"name": "app-xyz", "namespace": "production"}


async def test_growing_traffic_in_the_description_counts_too() -> None:
    target = Alert(labels={"alertname": "PodCPUHigh", **CPU}, annotations={"description": "traffic is rising fast"})

    assert (await decide(target)).lambda_function == "scale-pod"


@pytest.mark.parametrize(
    ("alertname", "labels"),
    [
        ("MyCustomThing", {"namespace": "shop", "pod": "api-1"}),
        ("HighLatency", {"service": "api"}),
        ("Foo", {}),
        # Flux sources that have no reconcile function of their own must not hit a wrong one.
        ("ReconciliationFailure", {"kind": "HelmRepository", "name": "bitnami", "exported_namespace": "flux-system"}),
        ("FluxReconciliationFailure", {"kind": "OCIRepository", "name": "podinfo", "namespace": "flux-system"}),
        ("FluxReconciliationFailure", {"customresource_kind": "Bucket", "name": "b", "namespace": "flux-system"}),
    ],
)
async def test_unknown_alerts_stay_undecided(alertname: str, labels: dict[str, str]) -> None:
    decision = await decide(alert(alertname, labels))

    assert decision.undecided
    assert decision.phases[0].outcome is Outcome.ABSTAINED


async def test_a_rule_for_a_denied_namespace_is_rejected_not_acted_on() -> None:
    decision = await decide(alert("KubePodCrashLooping", {"pod": "coredns-1", "namespace": "kube-system"}))

    assert decision.undecided
    assert decision.phases[0].outcome is Outcome.REJECTED


async def test_a_rule_whose_labels_are_missing_is_rejected() -> None:
    # The rule matches, but pod-restart needs a pod: nothing is acted on.
    decision = await decide(alert("KubePodCrashLooping", {"namespace": "shop"}))

    assert decision.undecided
    assert decision.phases[0].outcome is Outcome.REJECTED


async def test_rules_report_which_rule_matched() -> None:
    proposal = await RulesSelector(CONTEXT).select(alert("Watchdog", {}))

    assert proposal is not None
    assert "Watchdog" in proposal.reasoning and "escalate" in proposal.reasoning


async def test_static_comes_before_rules() -> None:
    target = alert("KubePodCrashLooping", {"pod": "api-1", "namespace": "shop"}, lambda_function="escalate")

    decision = await decide(target, "static", "rules")

    assert (decision.lambda_function, decision.method) == ("escalate", "static")
