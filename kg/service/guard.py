"""The knowledge server's front door, checked before any route runs: the bearer token, then the body size.

:class:`RequestGuard` is a plain ASGI middleware, so it runs before FastAPI reads or parses a body:

- with a token, every path but those in ``open_paths`` (default ``/healthz``) needs ``Authorization: Bearer
  <token>``, the docs (``/docs``, ``/redoc``, ``/openapi.json`` and their assets) included; a request without it
  is answered 401 before its body is read;
- a body longer than ``max_body_bytes`` is answered 413: at once when ``Content-Length`` says so, else (a chunked
  body) as soon as the bytes received pass the cap; nothing of it is parsed. A body within the cap is read once
  and handed to the app unchanged.

:func:`check_exposure` refuses to bind a non-loopback address without a token unless asked to (``--insecure``).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from evergraph.kg.errors import InsecureServeError

logger = logging.getLogger(__name__)

__all__ = ["MAX_BODY_BYTES", "OPEN_PATHS", "RequestGuard", "check_exposure", "is_loopback"]

MAX_BODY_BYTES = 64 * 1024
"""Default cap on a request body (64 KiB): a question is at most a few thousand characters."""
OPEN_PATHS = frozenset({"/healthz"})
"""Paths answered without the token."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_UNAUTHORISED = "missing or wrong bearer token: send 'Authorization: Bearer <token>'"


def token_matches(header: str, token: str) -> bool:
    """Whether an ``Authorization`` header value carries ``token`` as a bearer token (constant-time compare)."""
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), token.encode())


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def check_exposure(*, host: str, token: str | None, insecure: bool) -> None:
    """Refuse (:class:`InsecureServeError`) to serve on a non-loopback ``host`` without a ``token`` unless
    ``insecure``; with ``insecure`` it only warns."""
    if token is not None or is_loopback(host):
        return
    if not insecure:
        raise InsecureServeError(
            f"refusing to serve on {host} without a token: anyone who can reach it could query the graph; set a "
            "token (--token-env VAR), bind 127.0.0.1, or pass --insecure if this network is trusted"
        )
    logger.warning("serving on %s without a token (--insecure): anyone who can reach it can query", host)


async def _answer(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """ASGI middleware: token check, then body cap, before ``app`` sees the request (see the module docstring).

    ``token`` (None: no token needed), ``max_body_bytes`` (> 0), ``open_paths`` (default :data:`OPEN_PATHS`).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        max_body_bytes: int = MAX_BODY_BYTES,
        open_paths: frozenset[str] = OPEN_PATHS,
    ) -> None:
        if max_body_bytes <= 0:
            raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")
        self.app = app
        self.token = token
        self.max_body_bytes = max_body_bytes
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if (
            self.token is not None
            and scope.get("path") not in self.open_paths
            and not token_matches(headers.get("authorization", ""), self.token)
        ):
            await _answer(send, 401, _UNAUTHORISED, {"WWW-Authenticate": "Bearer"})
            return
        declared = headers.get("content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _answer(send, 400, f"Content-Length {declared!r} is not a number")
                return
            if length > self.max_body_bytes:
                await _answer(send, 413, self._too_large(length))
                return
        elif "transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _answer(send, 413, self._too_large(None))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self, size: int | None) -> str:
        has = "is longer than" if size is None else f"has {size} bytes, more than"
        return f"the request body {has} the {self.max_body_bytes} bytes allowed; send a shorter body"
