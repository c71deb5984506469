"""Dead letters and retries keep the original body, headers and properties, plus our bookkeeping.

Our counters live in our own `x-agent-sre-*` headers: RabbitMQ 4 ignores an `x-death` header
that a client republishes, and Knative skips `x-*` headers when it reads CloudEvents.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

REASON = "x-agent-sre-reason"
ATTEMPTS = "x-agent-sre-attempts"
LAST_ERROR = "x-agent-sre-last-error"
FIRST_FAILURE = "x-agent-sre-first-failure"
LAST_FAILURE = "x-agent-sre-last-failure"
REPLAYS = "x-agent-sre-replays"
ALERTNAMES = "x-agent-sre-alertnames"
BOOKKEEPING = (REASON, LAST_ERROR, FIRST_FAILURE, LAST_FAILURE, ALERTNAMES)

_MAX_ERROR_CHARS = 1000


def attempts_of(headers: Mapping[str, Any] | None) -> int:
    """How many times this message has already failed."""
    try:
        return int((headers or {}).get(ATTEMPTS, 0))
    except (TypeError, ValueError):
        return 0


def failed_copy(
    message: AbstractIncomingMessage,
    *,
    reason: str,
    error: str,
    attempts: int,
    alertnames: list[str] | None = None,
) -> aio_pika.Message:
    """A persistent copy of `message` that records one more failure."""
    now = datetime.now(timezone.utc).isoformat()
    headers = dict(message.headers or {})
    headers.setdefault(FIRST_FAILURE, now)
    headers.update({REASON: reason, ATTEMPTS: attempts, LAST_ERROR: error[:_MAX_ERROR_CHARS], LAST_FAILURE: now})
    if alertnames:
        headers[ALERTNAMES] = ",".join(alertnames)[:_MAX_ERROR_CHARS]
    return copy_message(message, headers)


def copy_message(message: AbstractIncomingMessage, headers: dict[str, Any]) -> aio_pika.Message:
    return aio_pika.Message(
        body=message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )
