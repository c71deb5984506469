"""A small client for OpenAI-compatible chat completions (Ollama, vLLM, llama.cpp's server).

It asks for one JSON object matching a schema, in the first of three forms the server accepts:
1. `response_format` {"type": "json_schema", ...}: OpenAI, vLLM, Ollama, llama.cpp's server;
2. `response_format` {"type": "json_object", "schema": ...}: llama-cpp-python's server, which
   refuses the first form with an HTTP 500 that names the field;
3. a forced tool call (`tools` with `tool_choice` "required") for servers that refuse both.
A refusal is an error status whose body names response_format or json_schema; the client moves to
the next form and remembers it for every later request.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson

from ..logs import MASK, mask_secrets, mask_url
from .answer import json_object, parse_answer
from .errors import LLMRequestRejected, LLMUnavailable
from .prompt import SCHEMA_NAME

log = logging.getLogger(__name__)

JSON_SCHEMA, JSON_OBJECT, TOOLS = "json_schema", "json_object", "tools"
MODES = (JSON_SCHEMA, JSON_OBJECT, TOOLS)
BACKOFF_CAP_S = 8.0


def chat_completions_url(base: str) -> str:
    """`http://h:8080`, `http://h:8080/` and `http://h:8080/v1` all name the same endpoint."""
    base = base.rstrip("/")
    return f"{base}/chat/completions" if base.endswith("/v1") else f"{base}/v1/chat/completions"


class ChatClient:
    def __init__(
        self,
        url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 10.0,
        max_retries: int = 2,
        backoff_s: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.endpoint = chat_completions_url(url)
        self.model = model
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.sleep = sleep
        self.mode = JSON_SCHEMA
        self._api_key = api_key
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def structured(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> dict[str, Any]:
        """The model's answer as a JSON object; raises an LLMError when there is none."""
        # A session per alert: a new connection costs a millisecond next to seconds of inference,
        # and nothing is left open by a caller that never closes its selectors.
        async with aiohttp.ClientSession(timeout=self.timeout) as session:
            while True:
                mode = self.mode
                try:
                    reply = await self._post(session, self._payload(mode, messages, schema))
                    break
                except LLMRequestRejected as exc:
                    if mode == TOOLS or not _names_response_format(exc.body):
                        raise
                    self.mode = MODES[MODES.index(mode) + 1]
                    log.info("%s refuses response_format %s; using %s from now on",
                             mask_url(self.endpoint), mode, self.mode)
        return parse_answer(reply)

    def _payload(self, mode: str, messages: list[dict[str, str]], schema: dict[str, Any]) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": 0, "max_tokens": 512}
        if mode == JSON_SCHEMA:
            payload["response_format"] = {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "schema": schema}}
        elif mode == JSON_OBJECT:
            payload["response_format"] = {"type": "json_object", "schema": schema}
        else:
            function = {"name": SCHEMA_NAME, "description": "Record the chosen remediation.", "parameters": schema}
            payload["tools"] = [{"type": "function", "function": function}]
            # "required" rather than a named function: llama.cpp's server accepts only the strings.
            payload["tool_choice"] = "required"
        return payload

    async def _post(self, session: aiohttp.ClientSession, payload: dict[str, Any]) -> dict[str, Any]:
        body = orjson.dumps(payload)
        headers = {**self._headers, "Content-Type": "application/json"}
        error: LLMUnavailable | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                await self.sleep(self._delay(attempt, error))
            try:
                async with session.post(self.endpoint, data=body, headers=headers) as response:
                    text = await response.text()
                    if 200 <= response.status < 300:
                        return json_object(text, "the response body")
                    if response.status == 500 and "response_format" in payload and _names_response_format(text):
                        # llama-cpp-python refuses a form it does not know with a 500: a refusal, not an
                        # outage, and asking again the same way cannot help
                        raise LLMRequestRejected(response.status, self._scrub(text))
                    if response.status == 429 or response.status >= 500:
                        error = LLMUnavailable(
                            f"HTTP {response.status} from {mask_url(self.endpoint)}",
                            _retry_after(response.headers.get("Retry-After")),
                        )
                        continue
                    raise LLMRequestRejected(response.status, self._scrub(text))
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = self._scrub(str(exc)) or type(exc).__name__
                error = LLMUnavailable(f"{mask_url(self.endpoint)}: {type(exc).__name__}: {reason}")
        assert error is not None
        raise error

    def _scrub(self, text: str) -> str:
        """Error text may quote the request (a server echoing a bad key): hide the key in any form."""
        text = mask_secrets(text)
        return text.replace(self._api_key, MASK) if self._api_key else text

    def _delay(self, attempt: int, error: LLMUnavailable | None) -> float:
        """Exponential backoff with jitter (half fixed, half random), at least a server's Retry-After."""
        ceiling = min(BACKOFF_CAP_S, self.backoff_s * 2 ** (attempt - 1))
        delay = ceiling / 2 + random.random() * ceiling / 2
        retry_after = error.retry_after if error is not None else None
        return max(delay, min(retry_after, BACKOFF_CAP_S)) if retry_after else delay


def _names_response_format(body: str) -> bool:
    body = body.lower()
    return "response_format" in body or "json_schema" in body


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None  # an HTTP date: the backoff alone will do
