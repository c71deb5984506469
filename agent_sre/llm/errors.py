"""Errors of the LLM client, as branches of the package's one tree (agent_sre/errors.py).

    AgentSreError
    └── LLMError                  anything that kept the model from answering usefully
          ├── LLMUnavailable      (also a TransientError) 5xx, 429, timeout, connection refused:
          │                       retried, and counted by the circuit breaker
          ├── LLMRequestRejected  another 4xx: the request itself is wrong, retrying cannot help
          └── LLMAnswerError      the server answered, but not with the JSON object asked for
"""

from __future__ import annotations

from ..errors import AgentSreError, TransientError


class LLMError(AgentSreError):
    """The LLM endpoint gave no usable answer."""


class LLMUnavailable(LLMError, TransientError):
    """The endpoint is down, overloaded or too slow; worth another attempt later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds, from a 429's or 503's Retry-After header


class LLMRequestRejected(LLMError):
    """The server refused the request (a 4xx other than 429)."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body


class LLMAnswerError(LLMError):
    """The reply is not the JSON object the schema asks for."""
