"""`agent-sre trm`: the evaluation gate in front of the shipped model."""

from __future__ import annotations

import pytest
import typer

import agent_sre.trm.export as export
from agent_sre.cli import trm as trm_cli
from agent_sre.schemas.catalog import load_catalog

GOOD = {"parameter_exact_match": 0.97, "escalate_to_active": 0.0, "function_accuracy": 0.98}
WORSE = {"parameter_exact_match": 0.91, "escalate_to_active": 0.0, "function_accuracy": 0.99}


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    shipped, candidate = tmp_path / "shipped", tmp_path / "candidate"
    for directory, tag in ((shipped, "old"), (candidate, "new")):
        directory.mkdir()
        for name in (export.WEIGHTS, export.CONFIG, export.VOCABULARY):
            (directory / name).write_text(tag)
    monkeypatch.setattr(export, "SHIPPED_DIR", shipped)
    return shipped, candidate


def _scores(monkeypatch, shipped, by_dir):
    monkeypatch.setattr(trm_cli, "_evaluate", lambda directory, split, catalog: by_dir[directory])


def test_gate_refuses_a_model_worse_on_the_test_split(dirs, monkeypatch):
    shipped, candidate = dirs
    _scores(monkeypatch, shipped, {shipped: GOOD, candidate: WORSE})
    with pytest.raises(typer.Exit) as exit_info:
        trm_cli._ship(candidate, load_catalog())
    assert exit_info.value.exit_code == 1
    assert (shipped / export.WEIGHTS).read_text() == "old"


def test_gate_ships_a_model_at_least_as_good(dirs, monkeypatch):
    shipped, candidate = dirs
    _scores(monkeypatch, shipped, {shipped: WORSE, candidate: GOOD})
    trm_cli._ship(candidate, load_catalog())
    assert all((shipped / name).read_text() == "new" for name in (export.WEIGHTS, export.CONFIG, export.VOCABULARY))


def test_escalate_safety_outranks_raw_accuracy(dirs, monkeypatch):
    shipped, candidate = dirs
    unsafe = {**GOOD, "escalate_to_active": 0.05, "function_accuracy": 0.99}
    _scores(monkeypatch, shipped, {shipped: GOOD, candidate: unsafe})
    with pytest.raises(typer.Exit):
        trm_cli._ship(candidate, load_catalog())
