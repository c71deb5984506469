"""A real HTTP server speaking OpenAI's chat-completions protocol, scripted by the test.

Each request takes the next scripted Reply (or `default` when the script is empty) and is
recorded with its headers, so a test can assert what the client sent.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Reply:
    answer: dict[str, Any] | None = None  # the JSON object the "model" outputs
    content: str | None = None  # raw assistant text instead (a malformed answer)
    status: int = 200
    body: str = ""  # the HTTP body of an error status
    delay_s: float = 0.0


@dataclass
class Received:
    payload: dict[str, Any]
    headers: dict[str, str]

    @property
    def system(self) -> str:
        return self.payload["messages"][0]["content"]

    @property
    def user(self) -> str:
        return self.payload["messages"][1]["content"]


@dataclass
class FakeLLM:
    default: Reply = field(default_factory=lambda: Reply(answer={"lambda_function": "escalate", "parameters": {},
                                                                  "confidence": 0.5, "reasoning": "unsure"}))
    script: list[Reply] = field(default_factory=list)
    reject_response_format: str = ""  # when set, a request with response_format gets an error with this message
    reject_status: int = 400  # llama-cpp-python's server answers 500
    accepted_formats: tuple[str, ...] = ()  # response_format types accepted even when rejecting the others
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    async def __aenter__(self) -> FakeLLM:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        payload = await request.json()
        self.requests.append(Received(payload, dict(request.headers)))
        form = payload.get("response_format", {}).get("type")
        if self.reject_response_format and form and form not in self.accepted_formats:
            error = {"error": {"message": self.reject_response_format, "type": "invalid_request_error"}}
            return web.json_response(error, status=self.reject_status)
        reply = self.script.pop(0) if self.script else self.default
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.status != 200:
            return web.Response(status=reply.status, text=reply.body)
        return web.json_response(_completion(payload, reply))


def _completion(payload: dict[str, Any], reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.answer is not None:
        arguments = json.dumps(reply.answer)
        if "tools" in payload:
            call = {"name": payload["tools"][0]["function"]["name"], "arguments": arguments}
            message["tool_calls"] = [{"id": "call_1", "type": "function", "function": call}]
        else:
            message["content"] = arguments
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": payload.get("model"), "choices": [choice]}


def answer(function: str, parameters: dict[str, str] | None = None, confidence: float = 0.9) -> Reply:
    return Reply(answer={"lambda_function": function, "parameters": parameters or {}, "confidence": confidence,
                         "reasoning": f"the alert calls for {function}"})
