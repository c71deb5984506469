"""Reading the model's JSON object out of a chat completion, whichever way the server returned it."""

from __future__ import annotations

from typing import Any

import orjson

from .errors import LLMAnswerError


def parse_answer(reply: dict[str, Any]) -> dict[str, Any]:
    """The JSON object in a completion: the forced tool call's arguments, else the message text."""
    try:
        message = reply["choices"][0]["message"]
    except (KeyError, IndexError, TypeError) as exc:
        raise LLMAnswerError("the reply has no choices[0].message") from exc
    if not isinstance(message, dict):
        raise LLMAnswerError("choices[0].message is not an object")
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function") if isinstance(call, dict) else None
        arguments = function.get("arguments") if isinstance(function, dict) else None
        if isinstance(arguments, dict):
            return arguments
        if isinstance(arguments, str):
            return json_object(arguments, "the tool call's arguments")
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        raise LLMAnswerError("the reply has neither a tool call nor text")
    return json_object(_strip_fence(content), "the answer text")


def json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise LLMAnswerError(f"{what} is not JSON: {text[:200]!r}") from exc
    if not isinstance(value, dict):
        raise LLMAnswerError(f"{what} is JSON but not an object")
    return value


def _strip_fence(text: str) -> str:
    # Models that ignore the schema often wrap the object in a ```json fence.
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text
