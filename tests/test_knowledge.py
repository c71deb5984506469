"""The real-alert knowledge (agent_sre/data/real_alerts.jsonl), its folds, its examples and `known`."""

from __future__ import annotations

import random
import re

import pytest

from agent_sre.knowledge.real import IGNORE, RealAlert, expected_answer, load_real_alerts, real_alert, real_examples
from agent_sre.knowledge.sources import COLLECTIONS, FOLDS, GROUPS, KUBE_PROMETHEUS_STACK, fold_of, held_out
from agent_sre.knowledge.generate import POOLS
from agent_sre.schemas.alert import Alert
from agent_sre.schemas.catalog import ESCALATE, load_catalog
from agent_sre.selectors.chain import Chain
from agent_sre.selectors.gates import Gates
from agent_sre.selectors.known import KnownSelector
from agent_sre.settings import Settings

CATALOG = load_catalog()
KNOWLEDGE = load_real_alerts()


def test_every_line_is_well_formed() -> None:
    for line in KNOWLEDGE:
        assert line.action in CATALOG.by_name or line.action == IGNORE, line
        assert not set(line.labels) & set(line.target_labels), line
        assert set(re.findall(r"\{(\w+)\}", line.says)) <= {*line.labels, *line.target_labels}, line
        assert line.source and line.reason, line


def test_it_covers_the_collections_sres_run_on_day_one() -> None:
    sources = {line.source for line in KNOWLEDGE}
    names = {line.alert for line in KNOWLEDGE}
    assert KUBE_PROMETHEUS_STACK <= sources
    assert {"flux-monitoring", "flux-notification", "cert-manager", "awesome-prometheus-alerts"} <= sources
    assert {"KubePodCrashLooping", "NodeFilesystemSpaceFillingUp", "Watchdog", "CertManagerCertExpirySoon",
            "FluxKustomizationReconciliationsucceeded", "HostOutOfDiskSpace", "etcdNoLeader"} <= names
    escalate = sum(line.action == ESCALATE for line in KNOWLEDGE)
    assert escalate > 1000 and escalate > 0.8 * len(KNOWLEDGE)  # most real alerts have no safe automated fix


def test_the_default_ignore_list_matches_exactly_the_lines_that_need_nobody() -> None:
    gates = Gates(CATALOG, Settings())
    for line in KNOWLEDGE:
        labels = {"alertname": line.alert, **dict(line.condition)}
        if line.severity:
            labels.setdefault("severity", line.severity)
        assert bool(gates.ignore_reason(Alert(labels=labels))) == (line.action == IGNORE), line


@pytest.mark.parametrize("fold", sorted(FOLDS))
def test_a_fold_holds_out_whole_sources_and_every_name_they_use(fold: str) -> None:
    train, test = held_out(KNOWLEDGE, fold)
    assert test and train
    assert not {line.alert for line in train} & {line.alert for line in test}
    if fold == "other":
        assert all(line.source not in COLLECTIONS for line in test)


def test_the_leave_one_group_out_groups_hold_every_source_exactly_once() -> None:
    groups = {line.source: fold_of(line.source) for line in KNOWLEDGE}
    tested = [line for fold in GROUPS for line in held_out(KNOWLEDGE, fold)[1]]

    assert set(groups.values()) == set(GROUPS)
    assert sorted(tested, key=repr) == sorted(KNOWLEDGE, key=repr)  # each line held out once, in its group
    with pytest.raises(ValueError, match="in no group"):
        fold_of("some/new-project")


def test_the_gates_let_through_every_active_line_whose_labels_name_its_parameters() -> None:
    # The knowledge and the catalog's evidence are one policy: an active line the gates refuse
    # would teach the selectors an answer the chain can never give.
    gates = Gates(CATALOG, Settings())
    refused = set()
    for example in real_examples(KNOWLEDGE, 2, seed=0, pools="test"):
        function, _ = expected_answer(example, CATALOG)  # escalate where the labels cannot name the target
        if function in (ESCALATE, IGNORE):
            continue
        if reason := gates.refusal(function, example.alert):
            refused.add(f"{example.family}: {reason}")
    assert not refused, sorted(refused)


def test_a_flux_event_carries_its_reason_as_a_label() -> None:
    [failed] = [line for line in KNOWLEDGE if line.alert == "FluxKustomizationReconciliationfailed"]
    assert real_alert(failed, random.Random(0), POOLS["test"]).labels["reason"].lower() == "reconciliationfailed"


def test_examples_carry_the_exporters_own_scrape_labels() -> None:
    [job_failed] = [line for line in KNOWLEDGE if line.alert == "KubeJobFailed"]
    alert = real_alert(job_failed, random.Random(0), POOLS["test"])
    assert alert.labels["job"] == "kube-state-metrics"
    assert "kube-state-metrics" in alert.labels["pod"]  # the exporter's pod, not the Job's
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+:8080", alert.labels["instance"])
    assert alert.labels["job_name"] != alert.labels["pod"]


def test_examples_of_an_unconditioned_line_avoid_the_values_its_siblings_claim() -> None:
    target_down = [line for line in KNOWLEDGE if line.alert == "TargetDown"]
    claimed = {value for line in target_down for key, value in line.condition if key == "job"}
    assert claimed  # TargetDown of the API server or kubelet is escalated
    examples = real_examples([line for line in target_down if not line.condition], 50, seed=0)
    assert examples and all(e.alert.labels.get("job") not in claimed for e in examples)


def test_renamed_examples_put_an_apps_word_in_active_names_only() -> None:
    active = [line for line in KNOWLEDGE if line.alert == "KubeJobFailed"]
    escalate = [line for line in KNOWLEDGE if line.alert == "etcdNoLeader"]
    examples = real_examples(active + escalate, 6, seed=0, renamed=1.0)
    apps = {"".join(part.capitalize() for part in app.split("-")) for app in POOLS["train"]["app"]}
    for example in examples:
        name = example.alert.alertname
        if example.function == ESCALATE:
            assert name == "etcdNoLeader"
        else:
            assert name.endswith("JobFailed") and any(name.startswith(app) for app in apps), name
    assert {e.alert.alertname for e in real_examples(active, 6, seed=0)} == {"KubeJobFailed"}


def test_ignored_lines_give_examples_only_when_asked() -> None:
    [watchdog] = [line for line in KNOWLEDGE if line.alert == "Watchdog"]
    assert real_examples([watchdog], 2, seed=0) == []
    assert {e.function for e in real_examples([watchdog], 2, seed=0, include_ignored=True)} == {IGNORE}


# known


def line(alert: str, action: str, condition: dict[str, str] | None = None, source: str = "test") -> RealAlert:
    return RealAlert(alert, source, "", "warning", (), (), "", tuple(sorted((condition or {}).items())), action, "",
                     f"{action} because")


async def test_known_names_the_action_of_a_known_alert() -> None:
    known = KnownSelector(CATALOG)
    crash = await known.select(Alert(labels={"alertname": "KubePodCrashLooping", "pod": "a-1", "namespace": "x"}))
    leader = await known.select(Alert(labels={"alertname": "etcdNoLeader"}))

    assert crash is not None and (crash.lambda_function, crash.confidence) == ("pod-restart", 0.95)
    assert crash.parameters == {}  # the chain resolves them
    assert leader is not None and (leader.lambda_function, leader.confidence) == (ESCALATE, 1.0)
    assert await known.select(Alert(labels={"alertname": "SomethingNobodyShips"})) is None


async def test_known_prefers_the_line_whose_condition_holds() -> None:
    known = KnownSelector(CATALOG, [line("TargetDown", "pod-check-status"),
                                    line("TargetDown", ESCALATE, {"job": "apiserver"})])

    api = await known.select(Alert(labels={"alertname": "TargetDown", "job": "apiserver"}))
    app = await known.select(Alert(labels={"alertname": "TargetDown", "job": "web"}))

    assert (api.lambda_function, app.lambda_function) == (ESCALATE, "pod-check-status")


async def test_known_folds_spellings_abstains_on_disagreement_and_on_ignored_lines() -> None:
    known = KnownSelector(CATALOG, [line("HostOomKillDetected", ESCALATE), line("Split", "pod-restart"),
                                    line("Split", ESCALATE, source="other"), line("Watchdog", IGNORE)])

    folded = await known.select(Alert(labels={"alertname": "HostOOMKillDetected"}))

    assert folded is not None and folded.lambda_function == ESCALATE
    assert await known.select(Alert(labels={"alertname": "Split"})) is None
    assert await known.select(Alert(labels={"alertname": "Watchdog"})) is None


async def test_a_known_risky_answer_still_needs_the_evidence_and_a_second_selector() -> None:
    known = KnownSelector(CATALOG, [line("NodeRAIDDiskFailure", "node-disk-cleanup"), line("KubePodCrashLooping", "pod-restart")])
    chain = Chain([known], CATALOG, Settings())

    raid = await chain.decide(Alert(labels={"alertname": "NodeRAIDDiskFailure", "node": "worker-1"}))
    crash = await chain.decide(Alert(labels={"alertname": "KubePodCrashLooping", "pod": "a-1", "namespace": "x"}))

    assert raid.undecided and "raid" in raid.phases[0].detail
    assert crash.lambda_function == ESCALATE and "another kind of evidence" in crash.reasoning
