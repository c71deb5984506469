"""The catalog: the contract's functions, parameter resolution, and the check before acting."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from agent_sre.errors import CatalogError, ConfigError
from agent_sre.schemas.alert import Alert
from agent_sre.schemas.catalog import load_catalog
from agent_sre.schemas.decision import Proposal

CONTRACT = {
    "flux-reconcile-kustomization",
    "flux-reconcile-gitrepository",
    "flux-reconcile-helmrelease",
    "pod-restart",
    "pod-check-status",
    "check-pvc-status",
    "scale-pod",
    "deployment-rollout-restart",
    "node-disk-cleanup",
    "certificate-renew",
    "job-retry",
    "escalate",
}
DENIED = {"kube-system"}
CATALOG = load_catalog()


def alert(**labels: str) -> Alert:
    return Alert(labels={"alertname": "Test", **labels})


def validate(function: str, parameters: dict[str, str], labels: dict[str, str]) -> dict[str, str]:
    proposal = Proposal(lambda_function=function, parameters=parameters, confidence=0.9)
    return CATALOG.validate_proposal(proposal, alert(**labels), DENIED)


def test_default_catalog_has_exactly_the_contract_functions() -> None:
    assert set(CATALOG.names) == CONTRACT
    assert len(CATALOG.names) == len(CONTRACT)


def test_every_function_is_described_and_rated() -> None:
    for function in CATALOG.functions:
        assert function.description
        assert function.risk in {"none", "low", "medium", "high"}
    assert CATALOG.by_name["escalate"].parameters == []


@pytest.mark.parametrize(
    ("function", "required", "optional"),
    [
        ("flux-reconcile-kustomization", {"name", "namespace"}, set()),
        ("flux-reconcile-gitrepository", {"name", "namespace"}, set()),
        ("flux-reconcile-helmrelease", {"name", "namespace"}, set()),
        ("pod-restart", {"name", "namespace"}, {"type"}),
        ("pod-check-status", {"namespace"}, {"selector"}),
        ("check-pvc-status", {"name", "namespace"}, set()),
        ("scale-pod", {"name", "namespace"}, {"replicas"}),
        ("deployment-rollout-restart", {"name", "namespace"}, {"kind"}),
        ("node-disk-cleanup", {"node"}, set()),
        ("certificate-renew", {"name", "namespace"}, set()),
        ("job-retry", {"name", "namespace"}, set()),
        ("escalate", set(), set()),
    ],
)
def test_contract_parameters(function: str, required: set[str], optional: set[str]) -> None:
    parameters = CATALOG.by_name[function].parameters

    assert {p.name for p in parameters if p.required} == required
    assert {p.name for p in parameters if not p.required} == optional


@pytest.mark.parametrize("function", ["flux-reconcile-kustomization", "certificate-renew"])
def test_resolve_prefers_exported_namespace(function: str) -> None:
    labels = alert(name="homepage", exported_namespace="apps", namespace="flux-system")

    assert CATALOG.resolve(function, labels) == {"name": "homepage", "namespace": "apps"}


def test_resolve_falls_back_to_namespace() -> None:
    labels = alert(name="homepage", namespace="flux-system")

    assert CATALOG.resolve("flux-reconcile-kustomization", labels) == {"name": "homepage", "namespace": "flux-system"}


def test_resolve_does_not_skip_a_malformed_preferred_label() -> None:
    # Falling back to `namespace` would act on the exporter's namespace, another object.
    labels = alert(name="homepage", exported_namespace="Apps_Prod", namespace="flux-system")

    assert CATALOG.resolve("flux-reconcile-kustomization", labels) == {"name": "homepage"}


@pytest.mark.parametrize(
    ("labels", "node"),
    [
        ({"instance": "node-1:9100"}, "node-1"),
        ({"instance": "node-1"}, "node-1"),
        ({"instance": "node-1.lan.example.com:9100"}, "node-1.lan.example.com"),
        ({"node": "worker-2", "instance": "10.0.0.5:9100"}, "worker-2"),
        ({"nodename": "worker-3", "instance": "10.0.0.5:9100"}, "worker-3"),  # node_uname_info's join
    ],
)
def test_node_comes_from_node_else_the_host_part_of_instance(labels: dict[str, str], node: str) -> None:
    assert CATALOG.resolve("node-disk-cleanup", alert(**labels)) == {"node": node}


@pytest.mark.parametrize("instance", ["10.0.0.5:9100", "10.0.0.5", "[::1]:9100", "fe80::1", "[fe80::1]"])
def test_an_ip_address_instance_is_never_a_node(instance: str) -> None:
    # An address names a scrape target (on kube-state-metrics alerts, the exporter's own pod),
    # not a node: nothing is resolved, so node-disk-cleanup is refused.
    node = CATALOG.by_name["node-disk-cleanup"].parameters[0]

    assert node.preferred(alert(instance=instance)) is None
    assert CATALOG.resolve("node-disk-cleanup", alert(instance=instance)) == {}
    with pytest.raises(CatalogError, match="'node' is missing"):
        validate("node-disk-cleanup", {}, {"instance": instance})


def test_pod_check_status_selector_is_a_label_pair() -> None:
    target_down = alert(job="api", namespace="shop", service="api-svc")
    job_only = alert(job="batch", namespace="shop")

    assert CATALOG.resolve("pod-check-status", target_down) == {"namespace": "shop", "selector": "service=api-svc"}
    assert CATALOG.resolve("pod-check-status", job_only) == {"namespace": "shop", "selector": "job=batch"}


def test_workload_kind_comes_from_the_label_name() -> None:
    labels = alert(statefulset="db", namespace="shop")

    assert CATALOG.resolve("deployment-rollout-restart", labels) == {
        "name": "db",
        "namespace": "shop",
        "kind": "statefulset",
    }


def test_resolve_leaves_missing_parameters_out() -> None:
    assert CATALOG.resolve("pod-restart", alert(namespace="shop")) == {"namespace": "shop"}


def test_resolve_of_an_unknown_function_is_a_catalog_error() -> None:
    with pytest.raises(CatalogError, match="unknown lambda function"):
        CATALOG.resolve("rm-rf", alert())


def test_a_correct_proposal_is_accepted() -> None:
    labels = {"pod": "api-1", "namespace": "shop", "reason": "CrashLoopBackOff"}

    accepted = validate("pod-restart", {"name": "api-1", "namespace": "shop", "type": "CrashLoopBackOff"}, labels)

    assert accepted == {"name": "api-1", "namespace": "shop", "type": "CrashLoopBackOff"}


def test_optional_parameters_may_be_left_out_and_escalate_takes_none() -> None:
    assert validate("pod-restart", {"name": "api-1", "namespace": "shop"}, {"pod": "api-1", "namespace": "shop"})
    assert validate("escalate", {}, {"pod": "api-1"}) == {}


def test_unknown_function_is_rejected() -> None:
    with pytest.raises(CatalogError, match="unknown lambda function"):
        validate("delete-cluster", {}, {})


def test_an_invented_value_is_rejected() -> None:
    with pytest.raises(CatalogError, match="name='api-2'"):
        validate("pod-restart", {"name": "api-2", "namespace": "shop"}, {"pod": "api-1", "namespace": "shop"})


def test_a_value_from_the_wrong_label_is_rejected() -> None:
    # `name` of pod-restart comes from `pod`; the namespace label's value is not a pod name.
    with pytest.raises(CatalogError):
        validate("pod-restart", {"name": "shop", "namespace": "shop"}, {"pod": "api-1", "namespace": "shop"})


def test_a_less_preferred_label_is_rejected_when_the_preferred_one_is_present() -> None:
    labels = {"name": "homepage", "exported_namespace": "apps", "namespace": "flux-system"}

    with pytest.raises(CatalogError, match="flux-system"):
        validate("flux-reconcile-kustomization", {"name": "homepage", "namespace": "flux-system"}, labels)


@pytest.mark.parametrize(
    "hostile",
    ["a;rm -rf /", "../../etc", "x\ny", "api-1\n", "$(reboot)", "API-1", "a" * 300, "api-1 ", "-api", "api_1", ""],
)
def test_a_label_value_failing_its_pattern_is_rejected(hostile: str) -> None:
    labels = {"pod": hostile, "namespace": "shop"}

    assert "name" not in CATALOG.resolve("pod-restart", alert(**labels))
    with pytest.raises(CatalogError):
        validate("pod-restart", {"name": hostile, "namespace": "shop"}, labels)


@pytest.mark.parametrize("hostile", ["shop;id", "../etc", "Shop", "s\nhop", "$(id)", "n" * 64])
def test_a_hostile_namespace_is_rejected(hostile: str) -> None:
    with pytest.raises(CatalogError, match="does not match"):
        validate("pod-restart", {"name": "api-1", "namespace": hostile}, {"pod": "api-1", "namespace": hostile})


def test_an_extra_parameter_is_rejected() -> None:
    labels = {"pod": "api-1", "namespace": "shop"}

    with pytest.raises(CatalogError, match="no parameter"):
        validate("pod-restart", {"name": "api-1", "namespace": "shop", "force": "true"}, labels)


def test_a_missing_required_parameter_is_rejected() -> None:
    with pytest.raises(CatalogError, match="'namespace' is missing"):
        validate("pod-restart", {"name": "api-1"}, {"pod": "api-1"})


def test_parameters_a_proposal_leaves_out_are_resolved_from_the_labels() -> None:
    labels = {"pod": "api-1", "namespace": "shop", "reason": "CrashLoopBackOff"}

    assert validate("pod-restart", {}, labels) == {"name": "api-1", "namespace": "shop", "type": "CrashLoopBackOff"}
    assert validate("pod-restart", {"name": "api-1"}, labels) == validate("pod-restart", {}, labels)


@pytest.mark.parametrize(
    ("function", "labels"),
    [
        # KubeJobFailed keeps kube-state-metrics' own pod label: restarting it fixes nothing.
        ("pod-restart", {"pod": "kube-prometheus-stack-kube-state-metrics-6d9f-x2x7q", "namespace": "monitoring",
                         "job": "kube-state-metrics", "job_name": "backup-1"}),
        ("node-disk-cleanup", {"node": "prometheus-node-exporter-abcde", "job": "node-exporter"}),
    ],
)
def test_a_subject_that_is_the_exporter_is_rejected(function: str, labels: dict[str, str]) -> None:
    with pytest.raises(CatalogError, match="is the exporter that scraped the alert"):
        validate(function, {}, labels)


@pytest.mark.parametrize("function", ["pod-restart", "deployment-rollout-restart", "job-retry"])
def test_a_denied_namespace_in_any_namespace_label_is_rejected(function: str) -> None:
    # kube-state-metrics scraped without honor_labels: its own namespace in `namespace`, the
    # object's in `exported_namespace`. coredns in kube-system must not be restarted from monitoring.
    labels = {"pod": "coredns-5d78c9869d-x2x7q", "deployment": "coredns", "job_name": "coredns-sync",
              "namespace": "monitoring", "exported_namespace": "kube-system"}
    parameters = CATALOG.resolve(function, alert(**labels))
    assert parameters["namespace"] == "monitoring"  # what the function itself would read

    with pytest.raises(CatalogError, match="exported_namespace='kube-system' is on the deny list"):
        validate(function, parameters, labels)


def test_escalate_and_node_cleanup_are_not_refused_for_a_denied_namespace_label() -> None:
    labels = {"namespace": "kube-system", "exported_namespace": "kube-system", "node": "worker-1"}
    assert validate("escalate", {}, labels) == {}
    assert validate("node-disk-cleanup", {}, labels) == {"node": "worker-1"}


def test_a_denied_namespace_is_rejected() -> None:
    labels = {"pod": "coredns-1", "namespace": "kube-system"}

    with pytest.raises(CatalogError, match="deny list"):
        validate("pod-restart", {"name": "coredns-1", "namespace": "kube-system"}, labels)


def write(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "catalog.json"
    path.write_text(content)
    return path


def test_a_catalog_file_overrides_the_built_in_one(tmp_path: Path) -> None:
    data = {"functions": [{"name": "escalate", "description": "page a human", "risk": "none"}]}

    catalog = load_catalog(write(tmp_path, json.dumps(data)))

    assert catalog.names == ["escalate"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param("{not json", "invalid", id="not-json"),
        pytest.param('{"rules": []}', "functions", id="no-functions"),
        pytest.param(
            '{"functions": [{"name": "a", "description": "d", "risk": "extreme"}]}', "risk", id="bad-risk"
        ),
        pytest.param(
            '{"functions": [{"name": "a", "description": "d", "risk": "low"},'
            ' {"name": "a", "description": "d", "risk": "low"}]}',
            "unique",
            id="duplicate-names",
        ),
        pytest.param(
            '{"functions": [{"name": "a", "description": "d", "risk": "low"}],'
            ' "rules": [{"function": "b", "alertname": "X"}]}',
            "unknown functions",
            id="rule-names-unknown-function",
        ),
        pytest.param(
            '{"functions": [{"name": "a", "description": "d", "risk": "low", "parameters":'
            ' [{"name": "n", "sources": ["pod:upper"], "pattern": "x"}]}]}',
            "unknown transform",
            id="unknown-transform",
        ),
    ],
)
def test_a_broken_catalog_file_is_a_config_error_naming_the_problem(tmp_path: Path, content: str, problem: str) -> None:
    path = write(tmp_path, content)

    with pytest.raises(ConfigError, match=problem) as caught:
        load_catalog(path)

    assert str(path) in str(caught.value)


def test_a_missing_catalog_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_catalog(tmp_path / "absent.json")


def test_a_functions_mode_is_act_shadow_or_approve_and_anything_else_refuses_to_load(tmp_path) -> None:
    raw = json.loads(resources.files("agent_sre.data").joinpath("catalog.json").read_text())
    raw["functions"][0]["mode"] = "shadow"
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(raw))
    catalog = load_catalog(path)
    first, second = catalog.functions[0].name, catalog.functions[1].name
    assert catalog.mode(first, "act") == "shadow" and catalog.mode(second, "act") == "act"
    assert catalog.mode(second, "shadow") == "shadow"
    raw["functions"][0]["mode"] = "yolo"
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="mode"):
        load_catalog(path)


def test_functions_at_the_approval_risk_or_above_wait_for_approval_and_escalate_never_does(tmp_path) -> None:
    raw = json.loads(resources.files("agent_sre.data").joinpath("catalog.json").read_text())
    catalog = load_catalog(resources.files("agent_sre.data").joinpath("catalog.json"))  # type: ignore[arg-type]
    risks = {f.name: f.risk for f in catalog.functions}
    assert risks["pod-restart"] == "medium" and risks["job-retry"] == "low" and risks["pod-check-status"] == "none"
    assert catalog.mode("pod-restart", "act", "medium") == "approve"
    assert catalog.mode("job-retry", "act", "medium") == "act"
    assert catalog.mode("job-retry", "act", "low") == "approve"
    assert catalog.mode("escalate", "act", "low") == "act"
    assert catalog.mode("pod-restart", "shadow", "medium") == "shadow"  # nothing acts, nothing to approve
    assert catalog.mode("pod-restart", "act", None) == "act"
    assert not catalog.needs_approvals("act", None) and not catalog.needs_approvals("act", "high")  # none is high
    assert catalog.needs_approvals("act", "medium")
    # One function trusted less than the rest: its own `mode: approve`, whatever AGENT_SRE_MODE says
    for function in raw["functions"]:
        if function["name"] == "job-retry":
            function["mode"] = "approve"
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(raw))
    own = load_catalog(path)
    assert own.mode("job-retry", "shadow") == "approve" and own.mode("pod-restart", "act") == "act"
    assert own.needs_approvals("shadow", None)
