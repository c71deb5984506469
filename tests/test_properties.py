"""Property tests: no alert crashes a decision, and every parameter comes from the alert's labels.

The whole decide path runs with the real models (the default chain, loaded once for the module)
on generated alerts: arbitrary label keys and values, summaries built of trend and traffic words,
names with slashes, numbers, percentages, units, unicode, empty and huge values. The text parsers
the gates and selectors share run alone with many more examples, since they are cheap.
"""

from __future__ import annotations

import asyncio
import json
import operator
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agent_sre.errors import CatalogError, InputError
from agent_sre.knowledge.context import metric_context
from agent_sre.retrieval.text import alert_text, tokenize
from agent_sre.schemas.alert import Alert, parse_alerts
from agent_sre.schemas.catalog import load_catalog
from agent_sre.schemas.decision import Decision, Outcome, Proposal
from agent_sre.selectors.base import SelectorContext, close_selectors, create_selectors, start_selectors
from agent_sre.selectors.chain import Chain
from agent_sre.selectors.gates import Gates
from agent_sre.selectors.rules import RulesSelector
from agent_sre.settings import DEFAULT_SELECTORS, Settings
from agent_sre.trm.encode import EncoderConfig, encode_alert

CATALOG = load_catalog()
# Latency is the benchmarks' business; a generous timeout keeps a busy CI machine from turning a
# slow answer into a timeout, while the test still fails on one that raises.
SETTINGS = Settings(selector_timeout_s=30.0)
GATES = Gates(CATALOG, SETTINGS)
CONTEXT_TOKENS = {"traffic=rising", "traffic=flat", "traffic=falling", "traffic=high", "memory=high"}

LABEL_KEYS = [
    "pod", "namespace", "exported_namespace", "deployment", "statefulset", "daemonset", "container", "job",
    "job_name", "service", "instance", "node", "nodename", "reason", "type", "kind", "customresource_kind",
    "condition", "replicas", "persistentvolumeclaim", "horizontalpodautoscaler", "name", "certificate",
    "severity", "app", "app.kubernetes.io/name", "eviction_signal",
]
ALERTNAMES = [
    "KubePodCrashLooping", "KubePodNotReady", "KubeDeploymentRolloutStuck", "KubeStatefulSetReplicasMismatch",
    "KubeDaemonSetRolloutStuck", "KubeHpaMaxedOut", "PodCPUHigh", "NodeFilesystemSpaceFillingUp", "KubeJobFailed",
    "FluxReconciliationFailure", "CertManagerCertExpirySoon", "KubePersistentVolumeFillingUp", "TargetDown",
    "PostgresqlDown", "NodeRAIDDiskFailure", "Watchdog", "SomethingNobodyKnows",
]
WORDS = [
    "traffic", "Traffic", "requests", "request-rate", "rps", "req/s", "qps", "load", "throughput", "rising",
    "climbing", "keeps", "up", "down", "steady", "flat", "dropping", "spiking", "restart", "counter", "pod", "is",
    "at", "by", "of", "while", "but", "and", "CPU", "memory", "/", "%", "+150%", "-40%", "12.5%", "12%", "1e309",
    "nan", "inf", "-0", "9" * 400, "Gi", "MiB", "4Gi", "2.5Gi / 4Gi", "1000 req/s", "ß", "İ", "ﬃ", "K", "é",
    "日本語", "\u200b", "\n", ".", ",", ";", "!", "(", ")", "=", "{}", '"', "\\",
    # traffic words inside names: issue 20's crash
    "demo-netpol/traffic-gen-b690cfc0a-d29wb", "shop/load-balancer-0", "requests-proxy-7f9c", "x/rps",
]
ANNOTATION_KEYS = [
    "summary", "description", "message", "request_rate_change", "traffic_trend", "rps_trend", "rps", "request_rate",
    "memory_usage", "memory", "cpu_usage", "runbook_url", "lambda_function", "lambda_parameters",
]

dns = st.from_regex(r"[a-z][a-z0-9-]{0,15}[a-z0-9]", fullmatch=True)  # what Kubernetes names look like
names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?(/[a-z0-9][-a-z0-9.]{0,20})?", fullmatch=True)
huge = st.builds(
    operator.mul, st.sampled_from(["a", "9", "1.", "traffic ", "flux", "cert", "disk", "-", "é", "%"]),
    st.integers(1_000, 50_000),
)
odd = st.sampled_from(
    ["", " ", "12%", "+150%", "1e309", "nan", "inf", "-0", "9" * 400, "İstanbul", "ǅ", "kube-system", "openshift-cnv",
     "mongo-rs0-1", "pg-main-0", "node-1:9100", "[::1]:9100", "10.0.0.1:9100", "Kustomization", "CrashLoopBackOff",
     "DiskPressure", "3", "0", "api\n", "a" * 253, "a" * 254]
)
label_values = st.one_of(names, odd, st.text(max_size=30), huge)
label_keys = st.one_of(st.sampled_from(LABEL_KEYS), st.text(min_size=1, max_size=20))
words = st.sampled_from(WORDS)
sentences = st.lists(st.one_of(words, words, words, names, st.text(max_size=8)), max_size=16).map(" ".join)
annotation_values = st.one_of(sentences, odd, huge, st.sampled_from(CATALOG.names), st.just('{"name": "api-1"}'))


# The labels each alert usually carries, so that generated alerts are also decided and fill parameters.
SHAPES = {
    "KubePodCrashLooping": ("pod", "namespace", "container"),
    "KubePodNotReady": ("pod", "namespace"),
    "KubeDeploymentRolloutStuck": ("deployment", "namespace"),
    "KubeStatefulSetReplicasMismatch": ("statefulset", "namespace"),
    "KubeDaemonSetRolloutStuck": ("daemonset", "namespace"),
    "KubeHpaMaxedOut": ("horizontalpodautoscaler", "namespace"),
    "PodCPUHigh": ("pod", "namespace", "deployment"),
    "NodeFilesystemSpaceFillingUp": ("instance", "node", "mountpoint"),
    "KubeJobFailed": ("job_name", "namespace"),
    "FluxReconciliationFailure": ("name", "namespace", "kind"),
    "CertManagerCertExpirySoon": ("name", "namespace"),
    "KubePersistentVolumeFillingUp": ("persistentvolumeclaim", "namespace"),
    "TargetDown": ("job", "namespace", "service"),
}
kinds = st.sampled_from(["Kustomization", "HelmRelease", "GitRepository", "HelmChart"])


def _mostly(typical: st.SearchStrategy[str], draw: st.DrawFn) -> st.SearchStrategy[str]:
    """Nine times in ten the typical value, else any label value."""
    return typical if draw(st.integers(0, 9)) else label_values


@st.composite
def alerts(draw: st.DrawFn) -> Alert:
    """Half of them shaped as a real alert (a known name and the labels it carries, mostly
    Kubernetes names, a few odd values), so that the chain decides and fills parameters; half anything."""
    if draw(st.booleans()):
        alertname = draw(st.sampled_from(sorted(SHAPES)))
        labels = {key: draw(kinds if key == "kind" else _mostly(dns, draw)) for key in SHAPES[alertname]}
        for key in draw(st.lists(st.sampled_from(LABEL_KEYS), max_size=3)):
            labels[key] = draw(_mostly(dns, draw))
        labels["alertname"] = alertname
    else:
        labels = draw(st.dictionaries(label_keys, label_values, max_size=8))
        labels["alertname"] = draw(st.one_of(st.sampled_from(ALERTNAMES), st.text(min_size=1, max_size=40), huge))
    annotations = draw(st.dictionaries(st.one_of(st.sampled_from(ANNOTATION_KEYS), st.text(max_size=12)),
                                       annotation_values, max_size=5))
    return Alert(labels=labels, annotations=annotations)


def from_labels(value: str, alert: Alert) -> bool:
    """The value is a label's value, its host part, its `key=value` pair, or a present label's key."""
    labels = alert.labels
    return (
        value in labels.values()
        or value in labels
        or any(f"{key}={label}" == value for key, label in labels.items())
        or any(label.startswith(value) and key == "instance" for key, label in labels.items())
    )


def assert_parameters_come_from_labels(decision: Decision, alert: Alert) -> None:
    # What a human is shown of the selectors' proposals is held to the same rule as what acts.
    for suggestion in decision.suggestions:
        assert_values_come_from_labels(suggestion.lambda_function, suggestion.parameters, alert)
    if decision.lambda_function is None:
        assert decision.parameters == {}
        return
    assert_values_come_from_labels(decision.lambda_function, decision.parameters, alert)


def assert_values_come_from_labels(function: str, parameters: dict[str, str], alert: Alert) -> None:
    specs = {p.name: p for p in CATALOG.by_name[function].parameters}
    for name, value in parameters.items():
        spec = specs[name]
        assert value == spec.preferred(alert), f"{name}={value!r} is not the first present source"
        assert spec.regex.fullmatch(value)
        assert from_labels(value, alert), f"{name}={value!r} is no label of the alert"
        if name == "namespace":
            assert value not in SETTINGS.denied_namespaces


@pytest.fixture(scope="module")
def decide() -> Iterator:
    """The default chain with its real models, on a loop of its own that lives as long as the module."""
    loop = asyncio.new_event_loop()
    selectors = create_selectors(DEFAULT_SELECTORS, SelectorContext(SETTINGS, CATALOG))
    loop.run_until_complete(start_selectors(selectors))
    chain = Chain(selectors, CATALOG, SETTINGS)

    def run(alert: Alert) -> Decision:
        return loop.run_until_complete(chain.decide(alert))

    run(Alert(labels={"alertname": "KubePodCrashLooping", "pod": "api-1", "namespace": "shop"}))  # warm up
    yield run
    loop.run_until_complete(close_selectors(selectors))
    loop.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(alert=alerts())
def test_the_default_chain_decides_any_alert_from_its_labels(decide, alert: Alert) -> None:
    started = time.perf_counter()
    decision = decide(alert)

    assert isinstance(decision, Decision)
    event(f"{decision.lambda_function} by {decision.method}" if decision.decided else "undecided")
    assert decision.lambda_function is None or decision.lambda_function in CATALOG.by_name
    assert_parameters_come_from_labels(decision, alert)
    if decision.lambda_function in SETTINGS.stateful_functions and decision.method != "static":
        assert GATES.stateful.refusal(alert) is None, "a stateful data service was restarted"
    json.loads(decision.model_dump_json())  # what the worker publishes and audits
    for phase in decision.phases:
        # static refuses an annotation lambda_parameters that is not a JSON object of strings
        broken_annotation = phase.selector == "static" and "lambda_parameters" in alert.annotations
        assert phase.outcome is not Outcome.ERROR or broken_annotation, f"{phase.selector}: {phase.detail}"
        assert phase.outcome is not Outcome.TIMEOUT, f"{phase.selector}: {phase.detail}"
    assert time.perf_counter() - started < 10.0


# The parsers alone: cheap, so many more examples.
many = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.data_too_large])
RULES = RulesSelector(SelectorContext(SETTINGS, CATALOG))
ENCODER = EncoderConfig.from_catalog(CATALOG)


@many
@given(alert=alerts())
def test_the_metric_context_is_a_set_of_known_tokens(alert: Alert) -> None:
    assert metric_context(alert) <= CONTEXT_TOKENS


@many
@given(text=sentences, key=st.sampled_from(["summary", "description", "request_rate_change", "memory_usage", "rps"]))
def test_any_sentence_reads_as_context(text: str, key: str) -> None:
    assert metric_context(Alert(labels={"alertname": "PodCPUHigh"}, annotations={key: text})) <= CONTEXT_TOKENS


@many
@given(alert=alerts(), function=st.sampled_from(CATALOG.names))
def test_the_gates_answer_for_every_function(alert: Alert, function: str) -> None:
    for answer in (GATES.refusal(function, alert), GATES.ignore_reason(alert)):
        assert answer is None or isinstance(answer, str)


# Kubernetes' ReplicaSet and pod suffixes: no vowels, so that they spell few words (but `db`, `pg`,
# `zk`). A suffix that is a whole word of the list (`mssql`, one in 14 million) cannot be told from a name.
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_hashes = st.text(_HASH_ALPHABET, min_size=5, max_size=10).filter(lambda h: h not in SETTINGS.stateful_services)


@many
@given(app=st.sampled_from(["api", "web", "checkout", "homepage", "paperless", "billing-api", "traefik"]),
       template=_hashes, suffix=_hashes)
def test_a_pod_hash_never_reads_as_a_data_service(app: str, template: str, suffix: str) -> None:
    target = Alert(labels={"alertname": "KubePodCrashLooping", "pod": f"{app}-{template}-{suffix}", "namespace": "shop"})
    assert GATES.stateful.refusal(target) is None


@many
@given(alert=alerts(), function=st.sampled_from(CATALOG.names))
def test_a_proposal_is_validated_or_refused_with_a_catalog_error(alert: Alert, function: str) -> None:
    try:
        parameters = CATALOG.validate_proposal(Proposal(lambda_function=function, confidence=1.0), alert,
                                               set(SETTINGS.denied_namespaces))
    except CatalogError:
        return
    spec = {p.name: p for p in CATALOG.by_name[function].parameters}
    assert all(value == spec[name].preferred(alert) and from_labels(value, alert) for name, value in parameters.items())


@many
@given(alert=alerts())
def test_the_text_the_retrievers_compare_is_bounded(alert: Alert) -> None:
    text = alert_text(alert)
    assert len(text) < 2_000
    assert all(word == word.lower() for word in tokenize(text))


@many
@given(alert=alerts())
def test_the_trm_encodes_any_alert_to_its_fixed_length(alert: Alert) -> None:
    encoded = encode_alert(alert, ENCODER)
    assert len(encoded.features) == len(encoded.roles) == ENCODER.seq_len
    assert all(len(row) == ENCODER.features for row in encoded.features)


@many
@given(alert=alerts())
async def test_the_rules_answer_any_alert(alert: Alert) -> None:
    proposal = await RULES.select(alert)
    assert proposal is None or proposal.lambda_function in CATALOG.by_name


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


@many
@given(data=st.one_of(json_values, st.fixed_dictionaries(
    {"labels": st.dictionaries(st.sampled_from(["alertname", *LABEL_KEYS[:5]]), json_values, max_size=4)},
    optional={"annotations": json_values, "status": json_values},
)))
def test_event_data_parses_to_alerts_or_an_input_error(data: object) -> None:
    try:
        parsed = parse_alerts(data)
    except InputError:
        return
    assert parsed and all(alert.alertname for alert in parsed)
