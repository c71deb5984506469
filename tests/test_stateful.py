"""No robot restarts, rolls or scales a stateful data service, or a pod in an operator's namespace.

Issue 20's three wrong changes: a rollout restart of a MongoDB StatefulSet, a rollout restart of
KubeVirt's `virt-handler` DaemonSet in `openshift-cnv`, and a pod restart of a crash-looping
PostgreSQL. Ordinary apps are still restarted.
"""

from __future__ import annotations

import pytest

from agent_sre.schemas.alert import Alert
from agent_sre.schemas.catalog import load_catalog
from agent_sre.schemas.decision import Outcome, Proposal
from agent_sre.selectors.base import SelectorContext, create_selectors
from agent_sre.selectors.chain import Chain
from agent_sre.selectors.stateful import StatefulServices, words
from agent_sre.settings import Settings

CATALOG = load_catalog()
DEFAULTS = Settings()
MATCHER = StatefulServices(DEFAULTS.stateful_services, DEFAULTS.stateful_labels, DEFAULTS.operator_namespaces)
RESTARTS = ("pod-restart", "deployment-rollout-restart", "scale-pod")


def alert(alertname: str, **labels: str) -> Alert:
    return Alert(labels={"alertname": alertname, **labels})


MONGO = alert("KubeStatefulSetReplicasMismatch", statefulset="mongo-rs0", namespace="shop", job="kube-state-metrics")
VIRT_HANDLER = alert("KubeDaemonSetRolloutStuck", daemonset="virt-handler", namespace="openshift-cnv",
                     job="kube-state-metrics")
POSTGRES = alert("KubePodCrashLooping", pod="pg-main-0", container="postgres", namespace="shop",
                 reason="CrashLoopBackOff", job="kube-state-metrics")
REDIS_HPA = alert("KubeHpaMaxedOut", horizontalpodautoscaler="redis-cache", deployment="redis-cache", namespace="shop")
API = alert("KubePodCrashLooping", pod="api-7db9c8f5b-x2p4g", container="api", namespace="shop",
            reason="CrashLoopBackOff", job="kube-state-metrics")
API_ROLLOUT = alert("KubeDeploymentRolloutStuck", deployment="api", namespace="shop", job="kube-state-metrics")
API_HPA = alert("KubeHpaMaxedOut", horizontalpodautoscaler="api", deployment="api", namespace="shop")


# the matcher


@pytest.mark.parametrize(
    ("target", "service"),
    [
        (MONGO, "statefulset=mongo-rs0 is a stateful data service (mongo)"),
        (POSTGRES, "pod=pg-main-0 is a stateful data service (pg)"),
        (alert("KubePodCrashLooping", pod="redis-master-0", namespace="shop"), "(redis)"),
        (alert("KubePodCrashLooping", pod="kafka-broker-2", namespace="shop"), "(kafka)"),
        (alert("KubePodNotReady", pod="my-cluster-zookeeper-1", namespace="kafka-prod"), "(zookeeper)"),
        (alert("KubePodCrashLooping", pod="etcd0", namespace="infra"), "(etcd)"),
        (alert("KubePodCrashLooping", pod="x-1", container="mariadb", namespace="shop"), "container=mariadb"),
        (alert("KubePodCrashLooping", pod="x-1", **{"app.kubernetes.io/name": "postgresql-ha"}), "(postgresql)"),
        (alert("KubePodCrashLooping", pod="x-1", app_kubernetes_io_name="ClickHouse"), "(click"),
        (alert("KubeDeploymentRolloutStuck", deployment="minio", namespace="s3"), "(minio)"),
        (alert("KubePodCrashLooping", pod="rook-ceph-osd-0-6f5d4c", namespace="rook-ceph"), "(rook)"),
        (alert("KubeDaemonSetRolloutStuck", daemonset="longhorn-manager", namespace="longhorn-system"), "(longhorn)"),
        (alert("KubePodCrashLooping", pod="cluster-example-1", namespace="cnpg-system"), "namespace=cnpg-system"),
        (alert("KubePodCrashLooping", pod="x-1", job="redis-exporter"), "job=redis-exporter"),
        (VIRT_HANDLER, "namespace=openshift-cnv is owned by an operator (openshift-*)"),
        (alert("KubePodCrashLooping", pod="x-1", namespace="tigera-operator"), "(*-operator)"),
        (alert("PostgresqlDown", instance="db:9187"), "the alert PostgresqlDown names a stateful data service"),
        (alert("MongodbReplicationLag"), "(mongodb)"),
        (alert("MySQLReplicationLag"), "(mysql)"),
        (alert("RabbitmqNodeDown"), "(rabbitmq)"),
        (alert("Mysql8Down"), "(mysql)"),
        (alert("KubePodCrashLooping", pod="x-1", name="PostgresCluster"), "(postgres)"),
    ],
)
def test_a_stateful_data_service_is_recognised(target: Alert, service: str) -> None:
    refusal = MATCHER.refusal(target)
    assert refusal is not None and service in refusal
    assert refusal.endswith("not restarted by a robot")


@pytest.mark.parametrize(
    "target",
    [
        API,
        API_ROLLOUT,
        alert("KubePodCrashLooping", pod="rediscover-5d8f9", namespace="shop"),  # not redis
        alert("KubePodCrashLooping", pod="vaultwarden-0", namespace="home"),  # not vault
        alert("KubeDeploymentRolloutStuck", deployment="elastic-ip-allocator", namespace="net"),
        alert("KubePodCrashLooping", pod="pgadmin-7c9d", namespace="tools"),  # the admin UI, not pg itself
        alert("KubePodCrashLooping", pod="dbt-runner-x2p4g", namespace="data-tools"),
        # a ReplicaSet's hash is no word, even where its letters spell one between digits
        alert("KubePodCrashLooping", pod="web-7db9c8f5b-2pg4z", namespace="shop"),
        alert("KubePodCrashLooping", pod="kube-state-metrics-db258-thslx", namespace="monitoring"),
        alert("KubePodCrashLooping", pod="web-1", namespace="openshifter"),
        alert("KubePodCrashLooping", pod="web-1", namespace="shop", job="kube-state-metrics",
              service="kube-prometheus-stack-kube-state-metrics"),
        alert("ServiceRediscoveryFailed", pod="api-1"),
    ],
)
def test_an_ordinary_app_is_not_taken_for_one(target: Alert) -> None:
    assert MATCHER.refusal(target) is None


def test_words_split_names_values_and_camel_case() -> None:
    assert list(words("mongo-rs0-1")) == ["mongo"]
    assert list(words("etcd0")) == ["etcd"]
    assert list(words("api-7db9c8f5b-x2p4g")) == ["api"]
    assert "mysql" in set(words("MySQLReplicationLag"))
    assert "redis" not in set(words("rediscover"))


def test_the_lists_are_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_SRE_STATEFUL_SERVICES", "legacyledger, mainframe")
    monkeypatch.setenv("AGENT_SRE_OPERATOR_NAMESPACES", "vendor-*")
    monkeypatch.setenv("AGENT_SRE_STATEFUL_LABELS", "statefulset")
    monkeypatch.setenv("AGENT_SRE_STATEFUL_FUNCTIONS", "pod-restart")
    settings = Settings()
    matcher = StatefulServices(settings.stateful_services, settings.stateful_labels, settings.operator_namespaces)

    assert settings.stateful_functions == ["pod-restart"]
    assert matcher.refusal(alert("X", statefulset="legacyledger-0")) is not None
    assert matcher.refusal(alert("X", pod="legacyledger-0")) is None  # not a label it reads
    assert matcher.refusal(alert("X", namespace="vendor-db")) is not None
    assert matcher.refusal(MONGO) is None  # mongo is no longer on the list


# the chain


class Says:
    """A selector that proposes one function, sure of it."""

    def __init__(self, name: str, function: str) -> None:
        self.name, self.function = name, function

    async def select(self, alert: Alert) -> Proposal | None:
        return Proposal(lambda_function=self.function, confidence=1.0, reasoning=f"{self.name} says so")


def agreeing(function: str, **settings: object) -> Chain:
    """Two confident selectors of different kinds that agree: only the gates stand in the way."""
    return Chain([Says("known", function), Says("rules", function)], CATALOG, Settings(**settings))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("function", "target", "detail"),
    [
        ("deployment-rollout-restart", MONGO, "statefulset=mongo-rs0 is a stateful data service (mongo)"),
        ("deployment-rollout-restart", VIRT_HANDLER, "namespace=openshift-cnv is owned by an operator"),
        ("pod-restart", POSTGRES, "pod=pg-main-0 is a stateful data service (pg)"),
        ("scale-pod", REDIS_HPA, "deployment=redis-cache is a stateful data service (redis)"),
    ],
)
async def test_a_confident_agreed_restart_of_a_data_service_is_refused(function: str, target: Alert, detail: str) -> None:
    decision = await agreeing(function).decide(target)

    assert decision.undecided
    assert [phase.outcome for phase in decision.phases] == [Outcome.REJECTED, Outcome.REJECTED]
    assert all(detail in (phase.detail or "") for phase in decision.phases)


@pytest.mark.parametrize(
    ("function", "target", "parameters"),
    [
        ("pod-restart", API, {"name": "api-7db9c8f5b-x2p4g", "namespace": "shop", "type": "CrashLoopBackOff"}),
        ("deployment-rollout-restart", API_ROLLOUT, {"name": "api", "namespace": "shop", "kind": "deployment"}),
        ("scale-pod", API_HPA, {"name": "api", "namespace": "shop"}),
    ],
)
async def test_an_ordinary_app_is_still_restarted(function: str, target: Alert, parameters: dict[str, str]) -> None:
    decision = await agreeing(function).decide(target)

    assert decision.lambda_function == function
    assert decision.parameters == parameters


async def test_other_functions_still_act_on_a_data_service() -> None:
    target = alert("KubePersistentVolumeFillingUp", persistentvolumeclaim="data-postgres-0", namespace="shop")
    decision = await agreeing("check-pvc-status").decide(target)
    assert decision.lambda_function == "check-pvc-status"


async def test_the_operators_own_static_annotation_is_exempt() -> None:
    target = POSTGRES.model_copy(update={"annotations": {"lambda_function": "pod-restart"}})
    chain = Chain(create_selectors(["static"], SelectorContext(DEFAULTS, CATALOG)), CATALOG, DEFAULTS)
    decision = await chain.decide(target)
    assert decision.lambda_function == "pod-restart" and decision.method == "static"


async def test_emptied_lists_let_the_restart_through() -> None:
    decision = await agreeing("pod-restart", stateful_services=[], operator_namespaces=[]).decide(POSTGRES)
    assert decision.lambda_function == "pod-restart"


async def test_the_real_name_table_and_rules_no_longer_restart_the_issues_examples() -> None:
    # known and rules both map these alert names to a restart: together they used to agree on it
    selectors = create_selectors(["known", "rules"], SelectorContext(DEFAULTS, CATALOG))
    chain = Chain(selectors, CATALOG, DEFAULTS)
    for target in (MONGO, VIRT_HANDLER, POSTGRES):
        decision = await chain.decide(target)
        assert decision.lambda_function not in RESTARTS, decision.reasoning
    assert (await chain.decide(API)).lambda_function == "pod-restart"
