"""An OpenAI-compatible chat-completions client with retries and a circuit breaker, for the `ai` selector."""

from .breaker import BreakerState, CircuitBreaker
from .answer import parse_answer
from .client import ChatClient, chat_completions_url
from .errors import LLMAnswerError, LLMError, LLMRequestRejected, LLMUnavailable

__all__ = [
    "BreakerState",
    "ChatClient",
    "CircuitBreaker",
    "LLMAnswerError",
    "LLMError",
    "LLMRequestRejected",
    "LLMUnavailable",
    "chat_completions_url",
    "parse_answer",
]
