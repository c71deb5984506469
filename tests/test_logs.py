"""JSON log lines, and credentials masked wherever they hide in a record."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from agent_sre.errors import ConfigError
from agent_sre.logs import mask_url, setup_logging


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    buffer = io.StringIO()
    setup_logging("DEBUG", stream=buffer)
    yield buffer
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


def lines(buffer: io.StringIO) -> list[dict]:
    return [orjson.loads(line) for line in buffer.getvalue().splitlines()]


def test_each_record_is_one_json_object_with_its_extra_fields(stream):
    log = logging.getLogger("agent_sre.test")
    log.info("accepted %s", "evt-1", extra={"event_id": "evt-1", "alerts": 2})
    log.debug("second line\nwith a newline")

    first, second = lines(stream)
    assert first["level"] == "INFO" and first["logger"] == "agent_sre.test"
    assert first["message"] == "accepted evt-1"
    assert first["event_id"] == "evt-1" and first["alerts"] == 2
    assert first["ts"].endswith("+00:00")
    assert second["message"] == "second line\nwith a newline"


def test_exception_text_is_included(stream):
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("agent_sre.test").exception("failed")

    [entry] = lines(stream)
    assert entry["level"] == "ERROR"
    assert "ValueError: boom" in entry["exception"] and "Traceback" in entry["exception"]


def test_secrets_are_masked_in_message_arguments_extras_and_exceptions(stream):
    log = logging.getLogger("agent_sre.test")
    url = "amqp://agent:hunter2@rabbit:5672/vhost"
    log.warning("connecting to %s", url, extra={"headers": {"Authorization": "Bearer tok.en-123"}, "urls": [url]})
    try:
        raise ConnectionError(f"cannot reach {url}")
    except ConnectionError:
        log.exception("broker down")

    text = stream.getvalue()
    assert "hunter2" not in text and "tok.en-123" not in text
    first, second = lines(stream)
    assert first["message"] == "connecting to amqp://agent:***@rabbit:5672/vhost"
    assert first["headers"] == {"Authorization": "Bearer ***"}
    assert first["urls"] == ["amqp://agent:***@rabbit:5672/vhost"]
    assert "amqp://agent:***@rabbit" in second["exception"]


def test_setting_up_twice_keeps_one_handler(stream):
    setup_logging("INFO", stream=stream)
    logging.getLogger("agent_sre.test").info("once")
    logging.getLogger("agent_sre.test").debug("filtered out at INFO")
    assert [entry["message"] for entry in lines(stream)] == ["once"]


def test_an_unknown_level_says_what_to_set():
    with pytest.raises(ConfigError, match="AGENT_SRE_LOG_LEVEL"):
        setup_logging("LOUD")


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:***@127.0.0.1:5672/"),
        ("amqps://user:p@ss@host/vhost", "amqps://user:***@host/vhost"),
        ("https://x:y@example.com/hook?token=abc&a=1", "https://x:***@example.com/hook?token=***&a=1"),
        ("amqp://127.0.0.1:5672/", "amqp://127.0.0.1:5672/"),
        # An unencoded space or / in a password still goes; a port and path before an @ go with it
        ("amqp://u:my pa/ss@rabbit:5672/ failed", "amqp://u:***@rabbit:5672/ failed"),
        ("redis://:s p@ce@redis:6379/0", "redis://:***@redis:6379/0"),
        ("http://host:8080/path@part", "http://host:***@part"),
        ("amqp://u:p@host failed for ops@example.com", "amqp://u:***@host failed for ops@example.com"),
    ],
)
def test_mask_url(url, masked):
    assert mask_url(url) == masked
