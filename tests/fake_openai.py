"""A real HTTP fake of an OpenAI-compatible chat endpoint, for tests (fixture ``fake_openai``).

``FakeOpenAI`` runs a FastAPI app under uvicorn in a background thread on 127.0.0.1 (a free port). It records
every request in ``.requests`` and answers from ``.script``: a list of ``(status, json_body)`` or
``(status, json_body, headers)`` consumed in order (a ``str`` body is sent as plain text). When the script is
empty, ``POST /v1/chat/completions`` gets an OpenAI-style 200 reply whose content is ``.reply(messages)``
(default: ``"Answer based on [1]."``) and any other path gets an OpenAI-style 404.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from tests.servers import ThreadedServer

ScriptItem = tuple[int, Any] | tuple[int, Any, dict[str, str]]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received: path, lower-cased headers, and the JSON body (None if not JSON)."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any


def default_reply(messages: list[dict[str, Any]]) -> str:
    """The default assistant answer, whatever was asked."""
    return "Answer based on [1]."


class FakeOpenAI:
    """An OpenAI-compatible chat server on ``127.0.0.1:<free port>``; ``base_url`` ends in ``/v1``.

    Use :meth:`start` and :meth:`stop` (or the ``fake_openai`` fixture). ``script`` and ``reply`` may be changed
    at any time; ``requests`` is appended to under a lock by the server thread.
    """

    chat_path = "/v1/chat/completions"

    def __init__(self, *, reply: Callable[[list[dict[str, Any]]], str] = default_reply) -> None:
        self.script: list[ScriptItem] = []
        self.reply = reply
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server: ThreadedServer | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
        async def handle(request: Request, path: str) -> Response:
            raw = await request.body()
            try:
                body = await request.json() if raw else None
            except ValueError:
                body = None
            with self._lock:
                self.requests.append(
                    RecordedRequest(request.method, request.url.path, dict(request.headers.items()), body)
                )
                item = self.script.pop(0) if self.script else None
                number = len(self.requests)
            if item is not None:
                status, content, *rest = item
                headers = rest[0] if rest else None
                if isinstance(content, str):
                    return PlainTextResponse(content, status_code=status, headers=headers)
                return JSONResponse(content, status_code=status, headers=headers)
            if request.url.path != self.chat_path or request.method != "POST":
                error = {"message": f"Unknown path {request.url.path}", "type": "invalid_request_error"}
                return JSONResponse({"error": error}, status_code=404)
            completion = self._completion(body if isinstance(body, dict) else {}, number)
            if isinstance(body, dict) and body.get("stream"):  # server-sent events, one chunk per word
                return StreamingResponse(_chunks(completion), media_type="text/event-stream")
            return JSONResponse(completion)

        return app

    def _completion(self, body: dict[str, Any], number: int) -> dict[str, Any]:
        messages = body.get("messages") or []
        text = self.reply(messages)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict))
        completion_tokens = len(text.split())
        return {
            "id": f"chatcmpl-fake-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake-model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def start(self, *, timeout: float = 10.0) -> FakeOpenAI:
        """Start serving on a free port and wait until the server accepts connections."""
        self._server = ThreadedServer(self._app(), name="fake-openai").start(timeout=timeout)
        self.port = self._server.port
        return self

    def stop(self, *, timeout: float = 10.0) -> None:
        """Ask the server to exit and wait for its thread."""
        if self._server is not None:
            self._server.stop(timeout=timeout)
        self._server = None


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A started :class:`FakeOpenAI`, stopped after the test."""
    fake = FakeOpenAI().start()
    try:
        yield fake
    finally:
        fake.stop()


def _chunks(completion: dict[str, Any]) -> Iterator[str]:
    """``completion`` as OpenAI ``chat.completion.chunk`` server-sent events, one word each, then ``[DONE]``."""
    words = completion["choices"][0]["message"]["content"].split(" ")
    for i, word in enumerate(words):
        delta = {"content": word if i == 0 else f" {word}"}
        chunk = {**{k: completion[k] for k in ("id", "created", "model")}, "object": "chat.completion.chunk"}
        chunk["choices"] = [{"index": 0, "delta": delta, "finish_reason": None}]
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"
