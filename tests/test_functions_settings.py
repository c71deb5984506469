"""The functions' settings, read from the environment as every other setting."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent_sre.errors import ConfigError
from agent_sre.settings import Settings


def test_lists_maps_and_secret_files(monkeypatch, tmp_path):
    (tmp_path / "key").write_text("s3cret\n")
    monkeypatch.setenv("AGENT_SRE_FUNCTIONS", "pod-restart, job-retry")
    monkeypatch.setenv("AGENT_SRE_FUNCTIONS_TIMEOUTS", '{"job-retry": 30}')
    monkeypatch.setenv("AGENT_SRE_NODE_CLEANUP_COMMAND", '["sh", "-c", "du -sh /host/var/log"]')
    monkeypatch.setenv("AGENT_SRE_NODE_CLEANUP_PATHS", "/var/log,/var/lib/containerd")
    monkeypatch.setenv("AGENT_SRE_RESULT_KEY_FILE", str(tmp_path / "key"))
    (tmp_path / "token").write_text("t0ken\n")
    monkeypatch.setenv("AGENT_SRE_FUNCTIONS_HTTP_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("AGENT_SRE_FUNCTIONS_KUBELET_STATS", "true")
    monkeypatch.setenv("AGENT_SRE_FUNCTIONS_FLUX_WITH_SOURCE", "true")

    settings = Settings(_env_file=None)

    assert settings.functions == ["pod-restart", "job-retry"]
    assert settings.functions_timeouts == {"job-retry": 30.0}
    assert settings.node_cleanup_command == ["sh", "-c", "du -sh /host/var/log"]
    assert settings.node_cleanup_paths == ["/var/log", "/var/lib/containerd"]
    assert settings.result_key is not None and settings.result_key.get_secret_value() == "s3cret"
    assert settings.functions_http_token is not None and settings.functions_http_token.get_secret_value() == "t0ken"
    assert settings.functions_kubelet_stats is True and settings.functions_flux_with_source is True
    assert "s3cret" not in repr(settings) and "t0ken" not in repr(settings)


def test_a_command_that_is_no_json_list_says_so(monkeypatch):
    monkeypatch.setenv("AGENT_SRE_NODE_CLEANUP_COMMAND", "rm -rf /")
    with pytest.raises(ValidationError, match="JSON list"):
        Settings(_env_file=None)


def test_an_empty_key_file_stops_start_up(tmp_path):
    (tmp_path / "key").write_text("")
    with pytest.raises(ConfigError, match="AGENT_SRE_RESULT_KEY_FILE"):
        Settings(_env_file=None, result_key_file=tmp_path / "key")


def test_the_defaults_act_for_real_and_unsigned():
    settings = Settings(_env_file=None)
    assert settings.functions == [] and settings.functions_dry_run is False and settings.result_key is None
    assert settings.functions_max_replicas == 10
    assert settings.functions_kubelet_stats is False  # no kubelet access (nodes/proxy) unless asked for
    assert settings.functions_flux_with_source is False  # no Flux source touched unless asked for


def test_an_empty_key_is_no_key_for_the_worker_and_the_functions_alike(monkeypatch):
    # An optional Secret key, or compose's ${AGENT_SRE_RESULT_KEY:-}, leaves the variable empty:
    # both sides must then take results unsigned, or the worker would refuse every one.
    monkeypatch.setenv("AGENT_SRE_RESULT_KEY", "")
    monkeypatch.setenv("AGENT_SRE_FUNCTIONS_HTTP_TOKEN", "")
    settings = Settings(_env_file=None)
    assert settings.result_key is None and settings.functions_http_token is None
