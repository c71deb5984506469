"""Alert parsing: one alert or an Alertmanager webhook, bad shapes, identity and correlation ids."""

from __future__ import annotations

import copy

import pytest

from agent_sre.errors import InputError
from agent_sre.schemas.alert import Alert, parse_alerts

# An Alertmanager v4 webhook, shaped as FORMATS.md describes (two alerts, one already resolved).
WEBHOOK = {
    "version": "4",
    "groupKey": '{}:{alertname="KubePodCrashLooping"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "agent-sre",
    "groupLabels": {"alertname": "KubePodCrashLooping"},
    "commonLabels": {"alertname": "KubePodCrashLooping", "severity": "warning"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "notification_reason": "new_alerts",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "KubePodCrashLooping", "pod": "api-1", "namespace": "shop", "severity": "warning"},
            "annotations": {"summary": "Pod is crash looping."},
            "startsAt": "2026-11-21T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
            "fingerprint": "1a2b3c4d5e6f7a8b",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "KubePodCrashLooping", "pod": "api-2", "namespace": "shop", "severity": "warning"},
            "annotations": {},
            "startsAt": "2026-11-21T09:00:00Z",
            "endsAt": "2026-11-21T09:30:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
            "fingerprint": "0f0e0d0c0b0a0908",
        },
    ],
}


def reason_of(data: object) -> str:
    with pytest.raises(InputError) as caught:
        parse_alerts(data)
    return caught.value.reason


def test_single_alert_object() -> None:
    alerts = parse_alerts({"labels": {"alertname": "PodCPUHigh", "pod": "app-xyz"}, "annotations": {}})

    assert len(alerts) == 1
    assert alerts[0].alertname == "PodCPUHigh"
    assert alerts[0].firing  # status defaults to firing, as in the seeds' examples
    assert alerts[0].annotations == {}


def test_webhook_fans_out_to_one_alert_each_in_order() -> None:
    alerts = parse_alerts(WEBHOOK)

    assert [a.labels["pod"] for a in alerts] == ["api-1", "api-2"]
    assert [a.firing for a in alerts] == [True, False]
    assert alerts[0].fingerprint == "1a2b3c4d5e6f7a8b"
    assert alerts[0].startsAt == "2026-11-21T10:00:00Z"


def test_alerts_are_frozen() -> None:
    alert = parse_alerts(WEBHOOK)[0]

    with pytest.raises(Exception):
        alert.labels = {}  # type: ignore[misc]


@pytest.mark.parametrize(
    "data",
    [
        {"labels": {"pod": "api-1"}},
        {"labels": {}},
        {"annotations": {"summary": "no labels at all"}},
        {"alerts": [{"labels": {"alertname": "A"}}, {"labels": {"severity": "x"}}]},
    ],
)
def test_missing_alertname(data: object) -> None:
    assert reason_of(data) == "missing_alertname"


def test_empty_alertname_is_missing() -> None:
    assert reason_of({"labels": {"alertname": ""}}) == "missing_alertname"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"labels": {"alertname": "A", "replicas": 3}}, id="number-label-value"),
        pytest.param({"labels": {"alertname": 42}}, id="number-alertname"),
        pytest.param({"labels": {"alertname": "A", "pod": None}}, id="null-label-value"),
        pytest.param({"labels": {"alertname": "A"}, "annotations": {"summary": ["x"]}}, id="list-annotation"),
        pytest.param({"labels": {"alertname": "A"}, "status": "pending"}, id="unknown-status"),
        pytest.param({"labels": {"alertname": "A"}, "startsAt": 1700000000}, id="number-startsAt"),
        pytest.param({"labels": ["alertname", "A"]}, id="labels-a-list"),
        pytest.param({"labels": "alertname=A"}, id="labels-a-string"),
        pytest.param(["not", "an", "object"], id="data-a-list"),
        pytest.param("alert", id="data-a-string"),
        pytest.param(None, id="data-null"),
        pytest.param({"alerts": []}, id="empty-alerts"),
        pytest.param({"alerts": {"labels": {"alertname": "A"}}}, id="alerts-an-object"),
        pytest.param({"alerts": ["x"]}, id="alert-not-an-object"),
    ],
)
def test_wrong_types_are_invalid_alert(data: object) -> None:
    assert reason_of(data) == "invalid_alert"


def test_the_error_names_the_bad_alert_and_field() -> None:
    webhook = copy.deepcopy(WEBHOOK)
    webhook["alerts"][1]["labels"]["replicas"] = 3

    with pytest.raises(InputError, match=r"alert #1.*labels\.replicas"):
        parse_alerts(webhook)


def test_identity_is_the_fingerprint_when_present() -> None:
    assert parse_alerts(WEBHOOK)[0].identity == "1a2b3c4d5e6f7a8b"


def test_identity_without_fingerprint_is_a_label_hash_independent_of_order() -> None:
    first = Alert(labels={"alertname": "A", "pod": "p", "namespace": "n"})
    reordered = Alert(labels={"namespace": "n", "pod": "p", "alertname": "A"})
    other = Alert(labels={"alertname": "A", "pod": "q", "namespace": "n"})

    assert first.identity == reordered.identity
    assert first.identity != other.identity
    assert len(first.identity) == 16
    int(first.identity, 16)  # hex, like Alertmanager's own fingerprint


def test_identity_hash_separates_keys_from_values() -> None:
    # Concatenation without separators would make these two label sets collide.
    assert Alert(labels={"alertname": "A", "ab": "c"}).identity != Alert(labels={"alertname": "A", "a": "bc"}).identity


def test_correlation_id_is_stable_for_one_occurrence() -> None:
    first = Alert(labels={"alertname": "A"}, fingerprint="f1", startsAt="2026-11-21T10:00:00Z")
    repeat = Alert(
        labels={"alertname": "A"}, fingerprint="f1", startsAt="2026-11-21T10:00:00Z", annotations={"summary": "again"}
    )
    new_occurrence = Alert(labels={"alertname": "A"}, fingerprint="f1", startsAt="2026-11-21T11:00:00Z")
    other_alert = Alert(labels={"alertname": "A"}, fingerprint="f2", startsAt="2026-11-21T10:00:00Z")

    assert first.correlation_id == repeat.correlation_id
    assert first.correlation_id != new_occurrence.correlation_id
    assert first.correlation_id != other_alert.correlation_id


def test_correlation_id_is_a_uuid_and_needs_no_fingerprint() -> None:
    import uuid

    alert = Alert(labels={"alertname": "A", "pod": "p"})

    assert uuid.UUID(alert.correlation_id).version == 5
    assert alert.correlation_id == Alert(labels={"pod": "p", "alertname": "A"}).correlation_id
