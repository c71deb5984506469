"""deploy/kubernetes/overlays/functions, rendered by `kubectl kustomize` and checked offline as the
worker's manifests are (tests/test_deploy.py): schemas, one namespace, pods that hold nothing they
do not need, and the generated files still what the generator writes; also with each opt-in
Component (deploy/kubernetes/components) added."""

from __future__ import annotations

import functools
import re

import pytest

from agent_sre.functions.manifests import account, render, render_component
from agent_sre.functions.permissions import (
    FLUX_WITH_SOURCE,
    KUBELET_STATS,
    OPT_INS,
    PERMISSIONS,
    component_of,
    env_of,
)
from agent_sre.schemas.catalog import load_catalog
from agent_sre.settings import Settings
from tests.deploy_schemas import CUSTOM_RESOURCES
from tests.kube_rbac import allowed, grants_of
from tests.test_deploy import CORE_KINDS, KUBERNETES_VERSIONS, environment, need
from tests.test_deploy import render as render_deploy
from tests.test_functions_rbac import COMPONENTS, OVERLAY, grants, kustomize, rendered

RBAC_KINDS = {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


@functools.cache
def _workers_result_key() -> object:
    """How the worker reads AGENT_SRE_RESULT_KEY: the functions must read the same."""
    return environment(render_deploy("base"))["AGENT_SRE_RESULT_KEY"]


def _deployments() -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in rendered()
            if d["kind"] == "Deployment" and d["metadata"]["name"].startswith("agent-sre-fn-")}


def test_the_generated_file_is_what_the_generator_writes():
    assert (OVERLAY / "functions.yaml").read_text() == render(), "run: agent-sre functions manifests > " \
        "deploy/kubernetes/overlays/functions/functions.yaml"


def test_every_catalog_function_has_permissions_and_a_deployment():
    names = set(load_catalog().names)
    assert set(PERMISSIONS) == names
    assert set(_deployments()) == {account(name) for name in names}


def _validate(docs: tuple[dict, ...], version: str) -> None:
    validator = need("kubernetes_validate", "kubernetes-validate")
    jsonschema = need("jsonschema", "jsonschema")
    version = validator.utils.latest_version() if version == "latest" else version
    for doc in docs:
        if doc["apiVersion"] == "serving.knative.dev/v1":  # before the core kinds: it is a `Service` too
            jsonschema.validate(doc, KNATIVE_SERVICE)
        elif doc["kind"] in CORE_KINDS | RBAC_KINDS:
            try:
                validator.validate(doc, version, strict=True)
            except validator.ValidationError as exc:
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} is invalid for Kubernetes {version}: {exc}")
        else:
            jsonschema.validate(doc, CUSTOM_RESOURCES[(doc["apiVersion"], doc["kind"])])


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_manifests_pass_kubernetes_schemas(version):
    _validate(rendered(), version)


def test_everything_lands_in_the_agent_sre_namespace():
    for doc in rendered():
        if doc["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"]["namespace"] == "agent-sre", (doc["kind"], doc["metadata"]["name"])
        for subject in doc.get("subjects", []):
            assert subject["namespace"] == "agent-sre"


def test_each_function_pod_runs_its_function_alone_as_its_own_account_in_dry_run():
    settings = set(f"AGENT_SRE_{name.upper()}" for name in Settings.model_fields)
    for name, deployment in _deployments().items():
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        env = {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}
        assert set(env) <= settings
        assert env["AGENT_SRE_RESULT_KEY"] == _workers_result_key()  # the same Secret key, optional
        assert account(env["AGENT_SRE_FUNCTIONS"]) == name == pod["serviceAccountName"]
        assert env["AGENT_SRE_FUNCTIONS_QUEUE"] == f"agent-sre.functions.{env['AGENT_SRE_FUNCTIONS']}"
        assert env["AGENT_SRE_FUNCTIONS_DRY_RUN"] == "true"
        assert container["command"] == ["agent-sre", "functions", "consume"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
        assert security["capabilities"] == {"drop": ["ALL"]} and pod["securityContext"]["runAsNonRoot"]
        assert pod["automountServiceAccountToken"] is bool(PERMISSIONS[env["AGENT_SRE_FUNCTIONS"]].cluster
                                                           or PERMISSIONS[env["AGENT_SRE_FUNCTIONS"]].own)
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["catalog"]["configMap"]["name"].startswith("agent-sre-catalog-")  # the worker's, hashed


# --- the Knative variant: Services running `functions serve` behind overlays/knative's Triggers ---

KNATIVE = OVERLAY.parent / "functions-knative"
# The fields of a Knative Service (serving.knative.dev/v1) these manifests use, as its CRD types them.
_CONTAINER = {"type": "object", "required": ["image"], "properties": {
    "ports": {"type": "array", "maxItems": 1,
              "items": {"type": "object", "properties": {"name": {"enum": ["http1", "h2c"]}}}}}}
_POD = {"type": "object", "required": ["containers"], "properties": {
    "serviceAccountName": {"type": "string"}, "volumes": {"type": "array"},
    "containers": {"type": "array", "maxItems": 1, "items": _CONTAINER}}}
KNATIVE_SERVICE = {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "properties": {
    "spec": {"type": "object", "required": ["template"], "properties": {
        "template": {"type": "object", "required": ["spec"], "properties": {"spec": _POD}}}}}}


def rendered_knative() -> tuple[dict, ...]:
    return kustomize(KNATIVE)


def test_the_generated_knative_file_is_what_the_generator_writes():
    assert (KNATIVE / "functions.yaml").read_text() == render(knative=True)


def test_each_function_trigger_delivers_to_its_functions_service():
    docs = rendered_knative()
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service" and d["apiVersion"].startswith("serving")}
    subscribers = {d["spec"]["filter"]["attributes"]["subject"]: d["spec"]["subscriber"]["ref"]["name"]
                   for d in docs if d["kind"] == "Trigger" and "subject" in d["spec"]["filter"]["attributes"]}
    assert set(subscribers) == set(load_catalog().names)
    catalog_map = next(d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"
                       and d["metadata"]["name"].startswith("agent-sre-catalog"))
    for function, service_name in subscribers.items():
        pod = services[service_name]["spec"]["template"]["spec"]
        [container] = pod["containers"]
        env = {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}
        assert pod["serviceAccountName"] == account(function) and env["AGENT_SRE_FUNCTIONS"] == function
        assert env["AGENT_SRE_RESULT_KEY"] == _workers_result_key()
        assert container["command"] == ["agent-sre", "functions", "serve"]
        assert env["AGENT_SRE_FUNCTIONS_DRY_RUN"] == "true" and "AGENT_SRE_AMQP_URL_FILE" not in env
        assert {v["name"]: v for v in pod["volumes"]}["catalog"]["configMap"]["name"] == catalog_map


def test_the_knative_variant_grants_what_the_plain_one_does():
    for function in load_catalog().names:
        assert grants_of(list(rendered_knative()), account(function), "agent-sre") == grants(function)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_knative_manifests_pass_their_schemas(version):
    _validate(rendered_knative(), version)


# --- opt-ins: rules left out by default, granted (with their setting on) by a Component ---

def _rules(docs: tuple[dict, ...], function: str) -> list[dict]:
    return [rule for grant in grants_of(list(docs), account(function), "agent-sre") for rule in grant.rules]


def _env(docs: tuple[dict, ...], function: str) -> dict[str, str]:
    [workload] = [d for d in docs if d["kind"] in ("Deployment", "Service") and d["metadata"]["name"]
                  in (account(function), function) and "template" in d["spec"]]
    [container] = workload["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item.get("value") for item in container["env"]}


def test_each_opt_in_is_a_setting_off_by_default_with_its_generated_component():
    named = {rule.opt_in for p in PERMISSIONS.values() for rule in p.cluster + p.own if rule.opt_in}
    assert named == set(OPT_INS)
    assert {p.name for p in COMPONENTS.iterdir()} == {component_of(o) for o in OPT_INS}
    for opt_in in OPT_INS:
        assert Settings.model_fields[opt_in].default is False
        assert (COMPONENTS / component_of(opt_in) / "kustomization.yaml").read_text() == render_component(
            component_of(opt_in)), f"run: agent-sre functions manifests --component {component_of(opt_in)} > ..."


@pytest.mark.parametrize("overlay", [OVERLAY, KNATIVE], ids=["plain", "knative"])
def test_by_default_no_role_grants_an_opt_in_rule_nor_sets_its_setting(overlay):
    docs = kustomize(overlay)
    for function, permissions in PERMISSIONS.items():
        granted = grants_of(list(docs), account(function), "agent-sre")
        assert not allowed(granted, "get", "", "nodes/proxy", None, "node-1"), function
        for opt_in in OPT_INS:
            for rule in permissions.opted(opt_in):
                assert not any(allowed(granted, verb, rule.group, resource, "shop", None)
                               for verb in rule.verbs for resource in rule.resources), (function, rule)
            assert env_of(opt_in) not in _env(docs, function), function


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("opt_in", OPT_INS)
@pytest.mark.parametrize("overlay", [OVERLAY, KNATIVE], ids=["plain", "knative"])
def test_a_component_adds_exactly_its_rules_and_turns_its_setting_on(overlay, opt_in, version):
    default, enabled = kustomize(overlay), kustomize(overlay, component_of(opt_in))
    _validate(enabled, version)
    assert [d["metadata"]["name"] for d in enabled] == [d["metadata"]["name"] for d in default]
    for function, permissions in PERMISSIONS.items():
        added = [rule.as_manifest() for rule in permissions.opted(opt_in)]
        assert _rules(enabled, function) == _rules(default, function) + added, function
        assert _env(enabled, function) == {**_env(default, function), **({env_of(opt_in): "true"} if added else {})}
    function, resource = {KUBELET_STATS: ("check-pvc-status", "nodes/proxy"),
                          FLUX_WITH_SOURCE: ("flux-reconcile-helmrelease", "helmcharts")}[opt_in]
    assert any(resource in rule["resources"] for rule in _rules(enabled, function))


def test_the_functions_alerts_read_only_what_the_functions_export():
    promql = need("promql_parser", "promql-parser")
    from agent_sre.functions.metrics import FunctionMetrics

    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    exported = {f.name + s for f in FunctionMetrics().registry.collect() for s in suffixes[f.type]} | {"up"}
    [rule] = [d for d in rendered() if d["kind"] == "PrometheusRule" and d["metadata"]["name"] == "agent-sre-functions"]
    alerts = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    for alert in alerts:
        promql.parse(alert["expr"])
        used = set(re.findall(r"\b(agent_sre_[a-z_]+|up)\b(?=\s*[{\[(]|\s*$|\s*[=!<>])", alert["expr"]))
        assert used and used <= exported, (alert["alert"], used - exported)
    assert {"AgentSreFunctionFailed", "AgentSreFunctionDown"} <= {a["alert"] for a in alerts}


def test_the_functions_service_scrapes_every_function_pod():
    docs = rendered()
    [service] = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "agent-sre-functions"]
    for deployment in _deployments().values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in container["ports"]


def test_the_functions_dashboard_shows_each_metric_and_reads_only_those():
    import json

    promql = need("promql_parser", "promql-parser")
    from agent_sre.functions.metrics import FunctionMetrics

    [board_map] = [d for d in rendered() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "agent-sre-functions-dashboard"]
    assert board_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = json.loads(board_map["data"]["agent-sre-functions.json"])
    exprs = [target["expr"] for panel in board["panels"] for target in panel["targets"]]
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    exported = {f.name + s for f in FunctionMetrics().registry.collect() for s in suffixes[f.type]}
    used = set()
    for expr in exprs:
        promql.parse(expr.replace("$__rate_interval", "5m").replace("$namespace", ".*"))
        used |= set(re.findall(r"agent_sre_[a-z_]+", expr))
        if "_bucket" in expr:
            assert expr.startswith("histogram_quantile(") and "by (le," in expr
    assert used == exported - {"agent_sre_function_run_duration_seconds_sum", "agent_sre_function_run_duration_seconds_count"}
