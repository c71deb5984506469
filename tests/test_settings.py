"""Settings from AGENT_SRE_* variables: comma lists, selector options, secrets from files."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from agent_sre.cli import app
from agent_sre.errors import ConfigError
from agent_sre.settings import DEFAULT_EVENT_TYPE, Settings

SECRET_URL = "amqp://agent:s3cr3t-pass@rabbit:5672/"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AGENT_SRE_* variable or .env file from the machine leaks into these tests."""
    import os

    for name in list(os.environ):
        if name.startswith("AGENT_SRE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_contract_defaults() -> None:
    settings = Settings()

    assert settings.amqp_url is None
    assert settings.input_exchange == "agent-sre.alerts"
    assert settings.input_queue == "agent-sre.alerts"
    assert settings.output_exchange == "agent-sre.triggers"
    assert settings.http_port == 8080
    assert settings.selectors == ["static", "known", "rag", "fewshot", "trm", "ai", "rules"]
    assert settings.accepted_types == [DEFAULT_EVENT_TYPE]
    assert settings.selector_threshold == 0.7


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("AGENT_SRE_SELECTORS", "static, trm ,rules", "selectors", ["static", "trm", "rules"]),
        ("AGENT_SRE_SELECTORS", "rules", "selectors", ["rules"]),
        ("AGENT_SRE_SELECTORS", "static,,rules,", "selectors", ["static", "rules"]),
        ("AGENT_SRE_ACCEPTED_TYPES", "a.fired,b.fired", "accepted_types", ["a.fired", "b.fired"]),
        ("AGENT_SRE_DENIED_NAMESPACES", "kube-system, prod", "denied_namespaces", ["kube-system", "prod"]),
        ("AGENT_SRE_DENIED_NAMESPACES", "", "denied_namespaces", []),
    ],
)
def test_comma_lists(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str, expected: list[str]
) -> None:
    monkeypatch.setenv(variable, value)

    assert getattr(Settings(), field) == expected


def test_contract_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_SRE_AMQP_URL", SECRET_URL)
    monkeypatch.setenv("AGENT_SRE_INPUT_EXCHANGE", "knative-broker-x")
    monkeypatch.setenv("AGENT_SRE_INPUT_QUEUE", "agent-sre.in")
    monkeypatch.setenv("AGENT_SRE_OUTPUT_EXCHANGE", "knative-broker-y")
    monkeypatch.setenv("AGENT_SRE_HTTP_PORT", "9000")

    settings = Settings()

    assert settings.require_amqp_url() == SECRET_URL
    assert (settings.input_exchange, settings.input_queue, settings.output_exchange) == (
        "knative-broker-x",
        "agent-sre.in",
        "knative-broker-y",
    )
    assert settings.http_port == 9000


def test_selector_options_json(monkeypatch: pytest.MonkeyPatch) -> None:
    options = '{"trm": {"threshold": 0.8, "timeout_s": 0.5}, "llm": {"timeout_s": 9}}'
    monkeypatch.setenv("AGENT_SRE_SELECTOR_OPTIONS", options)
    monkeypatch.setenv("AGENT_SRE_SELECTOR_TIMEOUT_S", "3")

    settings = Settings()

    assert settings.selector_min_confidence("trm") == 0.8
    assert settings.selector_timeout("trm") == 0.5
    assert settings.selector_min_confidence("llm") == 0.7  # the global default
    assert settings.selector_timeout("llm") == 9
    assert settings.selector_timeout("rules") == 3


def test_selector_options_nested_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_SRE_SELECTOR_OPTIONS__TRM__THRESHOLD", "0.9")

    assert Settings().selector_min_confidence("trm") == 0.9


def test_a_zero_threshold_is_kept() -> None:
    assert Settings(selector_options={"any": {"threshold": 0}}).selector_min_confidence("any") == 0


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("{bad", "JSON object"),
        ('{"trm": {"threshold": 2}}', "less than or equal to 1"),
        ('{"trm": {"timeout_s": 0}}', "greater than 0"),
        ('{"trm": "fast"}', "trm"),
    ],
)
def test_bad_selector_options_fail_validation_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("AGENT_SRE_SELECTOR_OPTIONS", value)

    with pytest.raises(ValidationError, match=problem) as caught:
        Settings()

    assert caught.value.errors()[0]["loc"][0] == "selector_options"


def test_secrets_from_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "url").write_text(SECRET_URL + "\n")
    (tmp_path / "token").write_text("  t0ken\n")
    monkeypatch.setenv("AGENT_SRE_AMQP_URL_FILE", str(tmp_path / "url"))
    monkeypatch.setenv("AGENT_SRE_HTTP_TOKEN_FILE", str(tmp_path / "token"))

    settings = Settings()

    assert settings.require_amqp_url() == SECRET_URL
    assert settings.http_token is not None and settings.http_token.get_secret_value() == "t0ken"


def test_a_secret_file_wins_over_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "url").write_text(SECRET_URL)
    monkeypatch.setenv("AGENT_SRE_AMQP_URL", "amqp://stale@old/")
    monkeypatch.setenv("AGENT_SRE_AMQP_URL_FILE", str(tmp_path / "url"))

    assert Settings().require_amqp_url() == SECRET_URL


@pytest.mark.parametrize("variable", ["AGENT_SRE_AMQP_URL_FILE", "AGENT_SRE_HTTP_TOKEN_FILE"])
def test_an_unreadable_secret_file_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str
) -> None:
    monkeypatch.setenv(variable, str(tmp_path / "missing"))

    with pytest.raises(ConfigError, match=variable) as caught:
        Settings()

    assert "missing" in str(caught.value)


@pytest.mark.parametrize("variable", ["AGENT_SRE_AMQP_URL_FILE", "AGENT_SRE_HTTP_TOKEN_FILE",
                                      "AGENT_SRE_FUNCTIONS_HTTP_TOKEN_FILE"])
def test_an_empty_secret_file_refuses_to_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str) -> None:
    # An empty token file would otherwise turn authentication off without a word.
    (tmp_path / "secret").write_text(" \n")
    monkeypatch.setenv(variable, str(tmp_path / "secret"))

    with pytest.raises(ConfigError, match=f"{variable}=.* is empty"):
        Settings()


def test_a_directory_as_secret_file_is_a_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AGENT_SRE_HTTP_TOKEN_FILE", str(tmp_path))

    with pytest.raises(ConfigError, match="AGENT_SRE_HTTP_TOKEN_FILE"):
        Settings()


def test_no_broker_configured_says_what_to_set() -> None:
    with pytest.raises(ConfigError, match="AGENT_SRE_AMQP_URL"):
        Settings().require_amqp_url()


def test_secrets_never_show(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t0ken-value")
    monkeypatch.setenv("AGENT_SRE_AMQP_URL", SECRET_URL)
    monkeypatch.setenv("AGENT_SRE_HTTP_TOKEN_FILE", str(tmp_path / "token"))

    settings = Settings()

    for text in (repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())):
        assert "s3cr3t-pass" not in text
        assert "t0ken-value" not in text


def test_env_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("AGENT_SRE_SELECTORS=rules\nAGENT_SRE_PREFETCH=4\n")

    settings = Settings()

    assert settings.selectors == ["rules"]
    assert settings.prefetch == 4


@pytest.mark.parametrize(
    "url",
    [
        "amqp://guest:pa/s3cr3t@127.0.0.1:5672/",  # an unencoded / in the password
        "amqp://guest:pa s3cr3t@127.0.0.1:5672/",  # an unencoded space
        "http://guest:s3cr3t@127.0.0.1:5672/",
        "amqp//guest:s3cr3t@broken",
        "amqp://guest:s3cr3t@127.0.0.1:99999/",
    ],
)
def test_a_malformed_broker_url_is_a_clear_error_that_never_shows_the_password(url: str) -> None:
    # `agent-sre run` must stop with exit code 2 at once, not retry the connection forever.
    result = CliRunner().invoke(app, ["run", "--selectors", "static"], env={"AGENT_SRE_AMQP_URL": url})

    assert result.exit_code == 2, result.output
    assert "is not a broker URL" in result.output and "percent-encoded" in result.output
    assert "s3cr3t" not in result.output


def test_a_percent_encoded_password_is_accepted() -> None:
    url = "amqp://guest:pa%2Fss%20word@127.0.0.1:5672/%2F"
    assert Settings(amqp_url=url).require_amqp_url() == url
