"""JSON logs: one object per line on stderr, with credentials masked before anything is written.

The masking lives in a handler filter rather than at call sites, so a URL or token that reaches a
log line by accident (an exception message from a client library, an `extra` field) is still hidden.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import datetime, timezone
from typing import Any, TextIO

import orjson

from .errors import ConfigError

MASK = "***"

# scheme://user:password@host: the password goes, whatever it holds (an unescaped `@`, `/` or
# space too), up to the `@` before the host: the last one before the URL's end. The user name
# stays, it helps debugging.
_URL_PASSWORD = re.compile(r"(?P<keep>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:).*?(?=@[^\s@]*(?:\s|$))")
_BEARER = re.compile(r"(?P<keep>\bbearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_QUERY_SECRET = re.compile(r"(?P<keep>[?&](?:access_token|token|password|secret)=)[^&\s#]+", re.IGNORECASE)
_PATTERNS = (_URL_PASSWORD, _BEARER, _QUERY_SECRET)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_HANDLER_MARK = "_agent_sre_json"


def mask_url(url: str) -> str:
    """`amqp://user:pass@host/` -> `amqp://user:***@host/`; also bearer tokens and token query parameters."""
    return mask_secrets(url)


def mask_secrets(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(lambda match: match.group("keep") + MASK, text)
    return text


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {key: _mask_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask_value(item) for item in value]
    return value


class SecretFilter(logging.Filter):
    """Masks credentials in the message, its arguments, `extra` fields and the exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_secrets(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        for name, value in list(record.__dict__.items()):
            if name not in _STANDARD_ATTRIBUTES:
                setattr(record, name, _mask_value(value))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD_ATTRIBUTES and not name.startswith("_"):
                entry[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        # default=str: an odd `extra` value must not cost the whole log line.
        return orjson.dumps(entry, default=str).decode()


def setup_logging(level: str, *, stream: TextIO | None = None) -> None:
    """Send the root logger's records to stderr (or `stream`) as JSON lines; safe to call twice."""
    levels = logging.getLevelNamesMapping()
    if level.upper() not in levels:
        raise ConfigError(f"AGENT_SRE_LOG_LEVEL={level!r} is not a log level: use DEBUG, INFO, WARNING or ERROR")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(SecretFilter())
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(levels[level.upper()])
