"""`agent-sre select`: one-shot selection from an argument, standard input or a JSON Lines file."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from agent_sre.cli import app
from tests.processes import AGENT_SRE, child_env
from agent_sre.schemas.alert import Alert
from agent_sre.selectors.gates import Gates

CRASH = {"labels": {"alertname": "KubePodCrashLooping", "pod": "api-1", "namespace": "shop"}, "annotations": {}}
FLUX = {"labels": {"alertname": "FluxReconciliationFailure", "name": "homepage", "namespace": "flux-system",
                   "kind": "Kustomization"}}
UNKNOWN = {"labels": {"alertname": "SomethingNobodyKnows", "namespace": "shop"}}
WEBHOOK = {"version": "4", "status": "firing", "receiver": "agent-sre", "groupLabels": {}, "commonLabels": {},
           "commonAnnotations": {}, "externalURL": "http://am:9093", "alerts": [CRASH, FLUX]}
FIELDS = {"lambda_function", "parameters", "confidence", "method", "reasoning", "phases"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("AGENT_SRE_"):
            monkeypatch.delenv(name)
    # These tests are about the command's input and output; test_trm_selector runs the models.
    monkeypatch.setenv("AGENT_SRE_SELECTORS", "static,rules")
    # rules alone has no second selector to agree on a pod restart; tests/test_gates.py covers that.
    monkeypatch.setenv("AGENT_SRE_AGREEMENT_RISKS", "")
    monkeypatch.chdir(tmp_path)


def run(*args: str, stdin: str | None = None):
    return CliRunner().invoke(app, ["select", *args], input=stdin)


def lines_of(text: str) -> list[object]:
    return [orjson.loads(line) for line in text.splitlines()]


def test_an_alert_argument_prints_one_decision() -> None:
    result = run(orjson.dumps(CRASH).decode())

    assert result.exit_code == 0, result.output
    [decision] = lines_of(result.stdout)
    assert FIELDS <= set(decision)
    assert decision["lambda_function"] == "pod-restart"
    assert decision["parameters"] == {"name": "api-1", "namespace": "shop"}
    assert decision["method"] == "rules"
    assert [p["selector"] for p in decision["phases"]] == ["static", "rules"]


def test_dash_reads_standard_input() -> None:
    result = run("-", stdin=orjson.dumps(FLUX).decode())

    assert result.exit_code == 0, result.output
    [decision] = lines_of(result.stdout)
    assert decision["lambda_function"] == "flux-reconcile-kustomization"
    assert decision["parameters"] == {"name": "homepage", "namespace": "flux-system"}


def test_a_structured_cloudevent() -> None:
    event = {"specversion": "1.0", "id": "1", "type": "io.homelab.prometheus.alert.fired", "source": "/p",
             "data": CRASH}

    result = run(orjson.dumps(event).decode())

    assert result.exit_code == 0, result.output
    assert lines_of(result.stdout)[0]["lambda_function"] == "pod-restart"


def test_a_structured_cloudevent_with_data_base64() -> None:
    event = {"specversion": "1.0", "id": "1", "type": "t", "source": "/p",
             "data_base64": base64.b64encode(orjson.dumps(FLUX)).decode()}

    result = run(orjson.dumps(event).decode())

    assert result.exit_code == 0, result.output
    assert lines_of(result.stdout)[0]["lambda_function"] == "flux-reconcile-kustomization"


def test_the_seeds_data_only_body() -> None:
    result = run(orjson.dumps({"data": FLUX}).decode())

    assert result.exit_code == 0, result.output
    assert lines_of(result.stdout)[0]["lambda_function"] == "flux-reconcile-kustomization"


def test_a_webhook_prints_one_line_per_alert_in_order() -> None:
    result = run(orjson.dumps(WEBHOOK).decode())

    assert result.exit_code == 0, result.output
    decisions = lines_of(result.stdout)
    assert [d["lambda_function"] for d in decisions] == ["pod-restart", "flux-reconcile-kustomization"]


def test_an_undecided_alert_escalates_saying_why() -> None:
    result = run(orjson.dumps(UNKNOWN).decode())

    assert result.exit_code == 0
    [decision] = lines_of(result.stdout)
    assert (decision["lambda_function"], decision["escalation"], decision["method"]) == ("escalate", "undecided", "chain")
    assert "no selector was confident" in decision["reasoning"]
    assert [p["outcome"] for p in decision["phases"]] == ["abstained", "abstained"]


def test_an_undecided_alert_prints_null_when_undecided_dead_letters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_SRE_UNDECIDED", "dead-letter")
    result = run(orjson.dumps(UNKNOWN).decode())

    assert result.exit_code == 0
    [decision] = lines_of(result.stdout)
    assert decision["lambda_function"] is None and decision["method"] is None


def test_file_gives_one_line_per_input_line_in_order(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_text("\n".join(orjson.dumps(x).decode() for x in (FLUX, CRASH, UNKNOWN, WEBHOOK)) + "\n")

    result = run("--file", str(path))

    assert result.exit_code == 0, result.output
    out = lines_of(result.stdout)
    assert len(out) == 4
    assert [out[0]["lambda_function"], out[1]["lambda_function"], out[2]["lambda_function"]] == [
        "flux-reconcile-kustomization",
        "pod-restart",
        "escalate",
    ]
    assert out[2]["escalation"] == "undecided"
    # A webhook line stays one output line: the list of its alerts' decisions.
    assert [d["lambda_function"] for d in out[3]] == ["pod-restart", "flux-reconcile-kustomization"]


def test_the_alert_that_crashed_select_file_is_decided_and_the_lines_after_it_too(tmp_path: Path) -> None:
    # Given the alert: "traffic" inside a pod name, and a trend word in the same sentence
    climbing = {"labels": {"alertname": "KubePodCrashLooping", "namespace": "demo-netpol",
                           "pod": "traffic-gen-b690cfc0a-d29wb", "container": "traffic-gen"},
                "annotations": {"description": "The restart counter of demo-netpol/traffic-gen-b690cfc0a-d29wb "
                                               "keeps climbing."}}
    path = tmp_path / "alerts.jsonl"
    path.write_text("\n".join(orjson.dumps(x).decode() for x in (climbing, FLUX)) + "\n")

    # When select reads them (it raised ValueError: min() arg is an empty sequence on the first)
    result = run("--file", str(path))

    # Then both are decided: the pod name says nothing about traffic, so the restart stands
    assert result.exit_code == 0, result.output
    first, second = lines_of(result.stdout)
    assert first["lambda_function"] == "pod-restart"
    assert first["parameters"] == {"name": "traffic-gen-b690cfc0a-d29wb", "namespace": "demo-netpol"}
    assert second["lambda_function"] == "flux-reconcile-kustomization"


def test_a_line_whose_decision_raises_gives_an_error_line_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a chain that raises on one alert name (as issue 20's alert once made it)
    ignore_reason = Gates.ignore_reason

    def raising(self: Gates, alert: Alert) -> str | None:
        if alert.alertname == "BadApple":
            raise ValueError("min() arg is an empty sequence")
        return ignore_reason(self, alert)

    monkeypatch.setattr(Gates, "ignore_reason", raising)
    bad = {"labels": {"alertname": "BadApple", "pod": "api-1", "namespace": "shop"}}
    path = tmp_path / "alerts.jsonl"
    path.write_text("\n".join(orjson.dumps(x).decode() for x in (CRASH, bad, FLUX)) + "\n")

    result = run("--file", str(path))

    # Then that line is an error line, the others are decided, and the exit status says so
    assert result.exit_code == 1
    first, error, last = lines_of(result.stdout)
    assert first["lambda_function"] == "pod-restart" and last["lambda_function"] == "flux-reconcile-kustomization"
    assert error == {"error": "decision_error", "line": 2, "message": "ValueError: min() arg is an empty sequence"}


def test_a_bad_line_gives_an_error_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_text(
        "\n".join([orjson.dumps(CRASH).decode(), "{not json", '{"labels": {"pod": "x"}}', orjson.dumps(FLUX).decode()])
    )

    result = run("-f", str(path))

    assert result.exit_code != 0
    out = lines_of(result.stdout)
    assert len(out) == 4
    assert out[0]["lambda_function"] == "pod-restart"
    assert out[1] == {"error": "invalid_json", "line": 2, "message": out[1]["message"]}
    assert out[2]["error"] == "missing_alertname" and out[2]["line"] == 3
    assert out[3]["lambda_function"] == "flux-reconcile-kustomization"  # later lines still run
    assert f"{path}:2: invalid_json" in result.stderr


def test_selectors_option_overrides_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_SRE_SELECTORS", "rules")

    overridden = run("--selectors", "static", orjson.dumps(CRASH).decode())
    from_env = run(orjson.dumps(CRASH).decode())

    [decision] = lines_of(overridden.stdout)
    assert decision["escalation"] == "undecided"
    assert [p["selector"] for p in decision["phases"]] == ["static"]
    assert [p["selector"] for p in lines_of(from_env.stdout)[0]["phases"]] == ["rules"]


def test_static_annotation_wins_over_rules() -> None:
    alert = {**CRASH, "annotations": {"lambda_function": "escalate"}}

    [decision] = lines_of(run(orjson.dumps(alert).decode()).stdout)

    assert (decision["lambda_function"], decision["method"], decision["confidence"]) == ("escalate", "static", 1.0)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "invalid_json"),
        ('{"labels": {"pod": "x"}}', "missing_alertname"),
        ('{"labels": {"alertname": "A", "replicas": 3}}', "invalid_alert"),
        ('{"specversion": "1.0", "data": {}}', "invalid_cloudevent"),
    ],
)
def test_bad_input_exits_non_zero_with_a_clear_message(text: str, reason: str) -> None:
    result = run(text)

    assert result.exit_code != 0
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {reason}")


def test_an_unknown_selector_names_the_installed_ones() -> None:
    result = run("--selectors", "static,nope", orjson.dumps(CRASH).decode())

    assert result.exit_code != 0
    assert "nope" in result.stderr and "rules" in result.stderr


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = run("--file", str(tmp_path / "absent.jsonl"))

    assert result.exit_code != 0
    assert "cannot read" in result.stderr


def test_the_installed_command_reads_standard_input() -> None:
    # The console script end to end, in its own process, as the README demo runs it: the default
    # chain, models and all (a cold embedding cache takes some seconds to fill).
    done = subprocess.run(
        [*AGENT_SRE, "select", "-"],
        input=orjson.dumps(WEBHOOK),
        capture_output=True,
        timeout=180,
        env=child_env({k: v for k, v in os.environ.items() if not k.startswith("AGENT_SRE_")}),
    )

    assert done.returncode == 0, done.stderr
    decisions = lines_of(done.stdout.decode())
    assert [d["lambda_function"] for d in decisions] == ["pod-restart", "flux-reconcile-kustomization"]


def test_the_sample_webhook_decides_a_pod_restart() -> None:
    """examples/alertmanager-webhook.json, which the compose demo sends, decides what it says."""
    sample = Path(__file__).resolve().parent.parent / "examples" / "alertmanager-webhook.json"
    result = CliRunner().invoke(app, ["select", sample.read_text()])
    assert result.exit_code == 0, result.output
    [decision] = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert decision["lambda_function"] == "pod-restart"
    assert decision["parameters"] == {"name": "api-7d9f", "namespace": "shop", "type": "CrashLoopBackOff"}
