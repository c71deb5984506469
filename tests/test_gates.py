"""The safety gates the chain applies to every selector, as they ship: evidence, risk, agreement, ignore."""

from __future__ import annotations

import pytest

from agent_sre.knowledge.context import metric_context
from agent_sre.schemas.alert import Alert
from agent_sre.schemas.catalog import load_catalog
from agent_sre.schemas.decision import Escalation, EvidenceKind, Outcome, Proposal
from agent_sre.selectors.chain import Chain
from agent_sre.selectors.gates import Gates
from agent_sre.selectors.static import StaticSelector
from agent_sre.settings import Settings

CATALOG = load_catalog()


class Says:
    """A selector that always proposes one function with one confidence, and counts its calls."""

    def __init__(self, name: str, function: str | None, confidence: float = 1.0) -> None:
        self.name, self.function, self.confidence, self.calls = name, function, confidence, 0

    async def select(self, alert: Alert) -> Proposal | None:
        self.calls += 1
        if self.function is None:
            return None
        return Proposal(lambda_function=self.function, confidence=self.confidence, reasoning=f"{self.name} says so")


def chain(*selectors: Says, **settings: object) -> Chain:
    return Chain(list(selectors), CATALOG, Settings(**settings))  # type: ignore[arg-type]


def alert(alertname: str, annotations: dict[str, str] | None = None, **labels: str) -> Alert:
    return Alert(labels={"alertname": alertname, **labels}, annotations=annotations or {})


RAID = alert("NodeRAIDDiskFailure", node="worker-1", device="md0", severity="critical")
DISK = alert("NodeFilesystemSpaceFillingUp", node="worker-1", mountpoint="/", fstype="ext4")
CRASH = alert("KubePodCrashLooping", pod="api-7d9f", namespace="shop", reason="CrashLoopBackOff")


# evidence


@pytest.mark.parametrize(
    ("function", "target"),
    [
        ("node-disk-cleanup", RAID),
        ("node-disk-cleanup", alert("HostSwapIsFillingUp", instance="worker-1:9100")),
        ("node-disk-cleanup", alert("LonghornVolumeReplicaStorageFull", node="worker-1", volume="pvc-1")),
        ("node-disk-cleanup", alert("KubeCronJobSuspended", instance="worker-1:9100", namespace="shop")),
        ("pod-restart", alert("KubePodOOMKilled", pod="api-7d9f", namespace="shop")),
        ("pod-restart", alert("CPUThrottlingHigh", pod="api-7d9f", namespace="shop", container="api")),
        ("pod-restart", alert("KubePodNotScheduled", pod="api-7d9f", namespace="shop")),
        ("pod-restart", alert("CephOSDCrashLooping", pod="rook-ceph-osd-0-abc", namespace="storage")),
        ("scale-pod", alert("KubePodCrashLooping", {"description": "the restart counter keeps climbing"},
                            pod="api-7d9f", namespace="shop")),
        ("flux-reconcile-gitrepository", alert("FluxHelmRepositoryNotReady", name="bitnami", namespace="flux-system")),
        ("flux-reconcile-helmrelease", alert("FluxReconciliationFailure", name="podinfo", namespace="apps",
                                             kind="HelmChart")),
        ("flux-reconcile-kustomization", alert("FluxKustomizationReconciliationsucceeded", name="apps",
                                               namespace="flux-system", severity="error")),
        ("flux-reconcile-kustomization", alert("FluxKustomizationDecryptionfailed", name="apps",
                                               namespace="flux-system", kind="Kustomization",
                                               reason="DecryptionFailed", severity="error")),
        ("flux-reconcile-helmrelease", alert("FluxHelmReleaseSomethingnew", name="podinfo", namespace="apps",
                                             kind="HelmRelease", reason="SomethingNew", severity="error")),
        ("pod-check-status", alert("PrometheusNotConnectedToAlertmanagers", namespace="monitoring", pod="prom-0")),
        ("pod-check-status", alert("PostgresqlDown", namespace="db", service="postgres")),
        ("job-retry", alert("KubeJobNotCompleted", job_name="backup-1", namespace="shop")),
    ],
)
async def test_a_confident_proposal_without_the_evidence_is_refused(function: str, target: Alert) -> None:
    # Given a selector that proposes the function at full confidence and a second one that agrees
    decision = await chain(Says("trm", function), Says("rag", function)).decide(target)

    assert decision.lambda_function != function
    assert decision.phases[0].outcome is Outcome.REJECTED and function in decision.phases[0].detail


async def test_a_raid_failure_is_never_cleaned_up_even_when_every_selector_insists() -> None:
    decision = await chain(*(Says(n, "node-disk-cleanup") for n in ("trm", "rag", "fewshot", "rules"))).decide(RAID)

    assert decision.undecided
    assert {p.outcome for p in decision.phases} == {Outcome.REJECTED}
    assert "raid" in decision.phases[0].detail


async def test_a_kube_state_metrics_pod_is_never_restarted() -> None:
    # KubeJobFailed keeps the exporter's own pod label; only the job is the alert's subject.
    target = alert("KubeJobFailed", pod="kube-prometheus-stack-kube-state-metrics-6d9f-x2x7q", namespace="shop",
                   job="kube-state-metrics", job_name="backup-1", container="kube-state-metrics")
    refused = await chain(Says("trm", "pod-restart"), Says("rag", "pod-restart")).decide(target)
    retried = await chain(Says("trm", "job-retry")).decide(target)

    assert refused.undecided and "exporter" in refused.phases[0].detail
    assert (retried.lambda_function, retried.parameters) == ("job-retry", {"name": "backup-1", "namespace": "shop"})


async def test_the_evidence_is_met_by_the_alerts_it_is_for() -> None:
    decision = await chain(Says("trm", "node-disk-cleanup"), Says("rag", "node-disk-cleanup")).decide(DISK)

    assert (decision.lambda_function, decision.parameters) == ("node-disk-cleanup", {"node": "worker-1"})


async def test_a_flux_event_is_reconciled_only_for_a_reason_on_the_allow_list() -> None:
    def event(reason: str) -> Alert:
        return alert(f"FluxKustomization{reason.capitalize()}", name="apps", namespace="flux-system",
                     kind="Kustomization", reason=reason, severity="error")

    transient = await chain(Says("trm", "flux-reconcile-kustomization")).decide(event("HealthCheckFailed"))
    unknown = await chain(Says("trm", "flux-reconcile-kustomization")).decide(event("ReconciliationFailedTwice"))

    assert (transient.lambda_function, transient.parameters) == (
        "flux-reconcile-kustomization", {"name": "apps", "namespace": "flux-system"})
    assert unknown.undecided and "allow-list" in unknown.phases[0].detail


async def test_a_static_annotation_needs_no_evidence_but_its_values_are_still_checked() -> None:
    annotated = alert("MyAppHung", {"lambda_function": "pod-restart"}, pod="api-7d9f", namespace="shop")
    exporter = alert("MyAppHung", {"lambda_function": "pod-restart"}, pod="kube-state-metrics-1", namespace="shop",
                     job="kube-state-metrics")
    decided = await chain(StaticSelector()).decide(annotated)  # type: ignore[arg-type]
    refused = await chain(StaticSelector()).decide(exporter)  # type: ignore[arg-type]

    assert (decided.lambda_function, decided.method) == ("pod-restart", "static")
    assert refused.undecided and "exporter" in refused.phases[0].detail


# risk and agreement


async def test_a_risky_function_waits_for_a_second_selector_that_agrees() -> None:
    first, second = Says("trm", "pod-restart", 0.95), Says("rag", "pod-restart", 0.85)

    decision = await chain(first, second).decide(CRASH)

    assert (decision.lambda_function, decision.method) == ("pod-restart", "trm")
    assert decision.parameters == {"name": "api-7d9f", "namespace": "shop", "type": "CrashLoopBackOff"}
    assert decision.confidence == 0.85 and "rag agrees" in decision.reasoning
    assert [p.outcome for p in decision.phases] == [Outcome.UNCONFIRMED, Outcome.DECIDED]


async def test_a_risky_proposal_nobody_confirms_escalates() -> None:
    decision = await chain(Says("trm", "pod-restart"), Says("rag", None), Says("rules", "pod-restart", 0.45)).decide(CRASH)

    assert (decision.lambda_function, decision.parameters) == ("escalate", {})
    assert "another kind of evidence" in decision.reasoning
    assert [p.outcome for p in decision.phases] == [Outcome.UNCONFIRMED, Outcome.ABSTAINED, Outcome.BELOW_THRESHOLD]


def of_kind(evidence: EvidenceKind, selector: Says) -> Says:
    selector.evidence = evidence  # type: ignore[attr-defined]
    return selector


async def test_a_second_kind_of_evidence_confirms_below_its_own_threshold_in_either_order() -> None:
    # Given rules (hand-written patterns) fairly sure of the restart, but below the 0.8 a restart asks alone
    rules_first = await chain(Says("rules", "pod-restart", 0.6), Says("rag", "pod-restart")).decide(CRASH)
    rules_after = await chain(Says("rag", "pod-restart"), Says("rules", "pod-restart", 0.6)).decide(CRASH)
    too_unsure = await chain(Says("rag", "pod-restart"), Says("rules", "pod-restart", 0.45)).decide(CRASH)

    # Then an independent reading at AGENT_SRE_AGREEMENT_MIN_CONFIDENCE confirms it, asked before or after
    assert (rules_first.lambda_function, rules_first.method) == ("pod-restart", "rag")
    assert (rules_after.lambda_function, rules_after.method) == ("pod-restart", "rag")
    assert "rules agrees (0.60)" in rules_after.reasoning
    assert (too_unsure.lambda_function, too_unsure.escalation) == ("escalate", Escalation.UNCONFIRMED)


async def test_two_selectors_on_one_kind_of_evidence_confirm_nothing() -> None:
    # Given rag and fewshot, both reading the nearest neighbours of one embedding, sure of a restart
    def neighbours() -> list[Says]:
        return [of_kind(EvidenceKind.EMBEDDING_NEIGHBOURS, Says(name, "pod-restart")) for name in ("rag", "fewshot")]

    alone = await chain(*neighbours()).decide(CRASH)
    with_rules = await chain(*neighbours(), of_kind(EvidenceKind.RULES, Says("rules", "pod-restart"))).decide(CRASH)

    # Then the second one is no confirmation: a human decides, unless a selector of another kind agrees
    assert (alone.lambda_function, alone.escalation) == ("escalate", Escalation.UNCONFIRMED)
    assert [p.outcome for p in alone.phases] == [Outcome.UNCONFIRMED, Outcome.UNCONFIRMED]
    assert "same kind of evidence as rag" in alone.phases[1].detail
    assert [(s.selector, s.lambda_function) for s in alone.suggestions] == [("rag", "pod-restart"), ("fewshot", "pod-restart")]
    assert alone.suggestions[0].parameters == {"name": "api-7d9f", "namespace": "shop", "type": "CrashLoopBackOff"}
    assert (with_rules.lambda_function, with_rules.method) == ("pod-restart", "rag")
    assert "rules agrees" in with_rules.reasoning


class Unsure(Says):
    """Sure of its answer, but on an input unlike what it learned from."""

    async def select(self, alert: Alert) -> Proposal | None:
        proposal = await super().select(alert)
        return proposal.model_copy(update={"familiar": False}) if proposal else None


async def test_a_selector_on_an_unfamiliar_input_decides_but_never_vetoes() -> None:
    vetoed = await chain(Says("rag", "pod-restart"), Says("trm", "escalate"), Says("rules", "pod-restart")).decide(CRASH)
    guessed = await chain(Says("rag", "pod-restart"), Unsure("trm", "escalate"), Says("rules", "pod-restart")).decide(CRASH)
    alone = await chain(Unsure("trm", "escalate"), Says("rules", "pod-restart")).decide(CRASH)

    assert (vetoed.lambda_function, vetoed.escalation) == ("escalate", Escalation.DISAGREEMENT)
    assert (guessed.lambda_function, guessed.method) == ("pod-restart", "rag")
    assert guessed.phases[1].outcome is Outcome.ABSTAINED and "no veto" in guessed.phases[1].detail
    assert (alone.lambda_function, alone.method) == ("escalate", "trm")


async def test_a_disagreement_on_one_kind_of_evidence_still_escalates() -> None:
    rag = of_kind(EvidenceKind.EMBEDDING_NEIGHBOURS, Says("rag", "pod-restart"))
    fewshot = of_kind(EvidenceKind.EMBEDDING_NEIGHBOURS, Says("fewshot", "escalate"))

    decision = await chain(rag, fewshot, Says("rules", "pod-restart")).decide(CRASH)

    assert (decision.lambda_function, decision.escalation) == ("escalate", Escalation.DISAGREEMENT)


async def test_selectors_that_disagree_escalate() -> None:
    third = Says("rules", "pod-restart")
    decision = await chain(Says("trm", "pod-restart"), Says("rag", "deployment-rollout-restart"), third).decide(
        alert("KubeDeploymentRolloutStuck", deployment="api", namespace="shop", pod="api-7d9f")
    )

    assert decision.lambda_function == "escalate" and "disagree" in decision.reasoning
    assert third.calls == 0


async def test_a_low_risk_or_read_only_function_needs_one_selector() -> None:
    pvc = alert("KubePersistentVolumeFillingUp", persistentvolumeclaim="data-0", namespace="shop")
    second = Says("rag", "check-pvc-status")

    decision = await chain(Says("trm", "check-pvc-status", 0.75), second).decide(pvc)

    assert (decision.lambda_function, decision.method, second.calls) == ("check-pvc-status", "trm", 0)


async def test_the_risk_threshold_stands_above_a_lower_selector_threshold() -> None:
    low = {"trm": {"threshold": 0.1}, "rag": {"threshold": 0.1}}
    decision = await chain(Says("trm", "pod-restart", 0.75), Says("rag", "pod-restart", 0.75),
                           selector_options=low).decide(CRASH)

    assert decision.undecided
    assert [p.detail for p in decision.phases] == ["confidence below 0.8"] * 2


async def test_risk_settings_are_configurable() -> None:
    relaxed = chain(Says("trm", "pod-restart", 0.75), agreement_risks=[],
                    risk_thresholds={"none": 0.7, "low": 0.7, "medium": 0.7, "high": 0.9})

    assert (await relaxed.decide(CRASH)).lambda_function == "pod-restart"
    with pytest.raises(ValueError, match="each of"):
        Settings(risk_thresholds={"medium": 0.5})


# what could act at all


@pytest.mark.parametrize(
    "target, functions",
    [
        (alert("KubePodCrashLooping", pod="api-1", namespace="shop"), ["pod-restart"]),
        (alert("KubeJobFailed", job_name="backup-1", namespace="shop"), ["job-retry"]),
        (alert("GatusEndpointDown", namespace="media", service="jellyfin"), ["pod-check-status"]),
        (alert("KubePodCrashLooping", pod="api-1", namespace="kube-system"), []),  # a denied namespace
        (alert("KubePodCrashLooping", pod="postgres-0", namespace="db"), []),  # a database
        (alert("KubePodCrashLooping", namespace="shop"), []),  # no pod to restart
        (RAID, []),  # the evidence of a full disk is not there
        (alert("MysqlDown", instance="10.0.0.5:9104", job="mysql"), []),
    ],
)
def test_admissible_names_the_actions_the_gates_and_the_labels_allow(target: Alert, functions: list[str]) -> None:
    # What the TRM's novelty map reads: where nothing could act, only a human can answer.
    assert Gates(CATALOG, Settings()).admissible(target) == functions


# ignore


@pytest.mark.parametrize(
    "target",
    [
        alert("Watchdog", severity="none"),
        alert("InfoInhibitor", severity="none", namespace="shop"),
        alert("FluxKustomizationReconciliationsucceeded", severity="info", name="apps", namespace="flux-system"),
        alert("FluxKustomizationProgressing", severity="info", name="apps", namespace="flux-system"),
        alert("FluxGitRepositoryArtifactuptodate", severity="info", name="apps", namespace="flux-system"),
    ],
)
async def test_alerts_that_need_nobody_are_ignored_before_any_selector_runs(target: Alert) -> None:
    selector = Says("trm", "escalate")

    decision = await chain(selector).decide(target)

    assert decision.ignored and decision.lambda_function is None and decision.method == "ignore"
    assert selector.calls == 0 and decision.phases == []


async def test_the_same_event_at_error_severity_is_not_ignored() -> None:
    target = alert("FluxKustomizationProgressing", severity="error", name="apps", namespace="flux-system")

    decision = await chain(Says("trm", "escalate")).decide(target)

    assert not decision.ignored and decision.lambda_function == "escalate"


async def test_the_ignore_list_is_configurable() -> None:
    decision = await chain(Says("trm", "escalate"), ignored_alerts=["NightlyNoise"], ignored_info_events="").decide(
        alert("Watchdog")
    )
    custom = await chain(Says("trm", "escalate"), ignored_alerts=["NightlyNoise"]).decide(alert("NightlyNoise"))

    assert decision.lambda_function == "escalate" and custom.ignored


# metric context


@pytest.mark.parametrize(
    ("annotations", "tokens"),
    [
        ({"summary": "CPU at 91% and traffic is rising"}, {"traffic=rising"}),
        ({"request_rate_change": "+150%"}, {"traffic=rising"}),
        ({"request_rate_change": "+1%"}, {"traffic=flat"}),
        ({"summary": "CPU pegged while traffic is dropping"}, {"traffic=falling"}),
        # the seeds' PodCPUHigh: a high request rate and memory headroom, no trend word
        ({"cpu_usage": "85%", "memory_usage": "2.5Gi / 4Gi", "request_rate": "1000 req/s",
          "summary": "CPU usage above 80%"}, {"traffic=high"}),
        ({"memory_usage": "3.9Gi / 4Gi"}, {"memory=high"}),
        # a trend word in a sentence about something else says nothing about traffic
        ({"description": "Pod shop/api is restarting; the restart counter keeps climbing"}, set()),
        ({"summary": "CPU is up by 40% but traffic is steady"}, {"traffic=flat"}),
    ],
)
def test_metric_context_is_read_where_it_is_given(annotations: dict[str, str], tokens: set[str]) -> None:
    assert metric_context(alert("PodCPUHigh", annotations, pod="api-1", namespace="shop")) == tokens
