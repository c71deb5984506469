"""`agent-sre functions`: its help, the manifests it prints, and what it says when it cannot start."""

from __future__ import annotations

from typer.testing import CliRunner

from agent_sre.cli import app
from tests.test_functions_rbac import OVERLAY

runner = CliRunner()


def test_help_names_the_commands():
    result = runner.invoke(app, ["functions", "--help"])
    assert result.exit_code == 0
    for command in ("consume", "serve", "manifests"):
        assert command in result.output


def test_manifests_prints_the_checked_in_file():
    plain = runner.invoke(app, ["functions", "manifests"])
    knative = runner.invoke(app, ["functions", "manifests", "--knative"])
    assert plain.exit_code == knative.exit_code == 0
    assert plain.output == (OVERLAY / "functions.yaml").read_text()
    assert knative.output == (OVERLAY.parent / "functions-knative" / "functions.yaml").read_text()


def test_consume_without_a_broker_says_what_to_set(monkeypatch):
    monkeypatch.delenv("AGENT_SRE_AMQP_URL", raising=False)
    result = runner.invoke(app, ["functions", "consume", "--functions", "escalate"])
    assert result.exit_code == 2 and "AGENT_SRE_AMQP_URL" in result.output


def test_an_unknown_function_is_named(monkeypatch):
    monkeypatch.setenv("AGENT_SRE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    result = runner.invoke(app, ["functions", "consume", "--functions", "pod-rstart"])
    assert result.exit_code == 2 and "pod-rstart" in result.output
