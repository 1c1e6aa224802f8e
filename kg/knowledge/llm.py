"""A small client for any OpenAI-compatible chat-completions endpoint (``POST {base_url}/chat/completions``).

Defaults (see :class:`ChatConfig`): 30 s timeout per attempt, 3 extra attempts on HTTP 429, 5xx, timeouts and
connection errors, with exponential back-off from 0.5 s doubled each retry and capped at 8 s (a ``Retry-After``
header in seconds is honoured up to that cap), temperature 0.0 and at most 512 reply tokens. The API key is read
from the environment variable named by ``api_key_env`` (default ``OPENAI_API_KEY``) at request time and is never
logged. Any other 4xx answer is not retried: it raises :class:`LLMError` at once, with a hint of what to check.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from evergraph.kg.errors import LLMConfigError, LLMError, SettingsError
from evergraph.kg.settings import load_settings

__all__ = ["ChatClient", "ChatConfig", "ChatReply", "LLMConfigError", "LLMError"]

log = logging.getLogger(__name__)

_EXCERPT = 200  # characters of a server body quoted in error messages
_RETRY_STATUSES = frozenset({429, *range(500, 600)})
_REQUIRED_ENV = (("base_url", "EVERGRAPH_LLM_BASE_URL"), ("model", "EVERGRAPH_LLM_MODEL"))  # ChatConfig field, env var


class ChatConfig(BaseModel):
    """Where and how to ask an OpenAI-compatible chat endpoint. Frozen; unknown fields are refused.

    Defaults: ``api_key_env="OPENAI_API_KEY"``, ``timeout=30.0`` s per attempt, ``max_retries=3`` extra attempts,
    ``backoff=0.5`` s doubled each retry, ``max_backoff=8.0`` s, ``temperature=0.0``, ``max_tokens=512``.
    ``base_url`` and ``model`` have no default (see :meth:`from_env`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = Field(description="endpoint root, e.g. http://127.0.0.1:8080/v1 (a trailing slash is dropped)")
    model: str = Field(min_length=1, description="model name sent with every request")
    api_key_env: str | None = Field(
        "OPENAI_API_KEY", description="name of the env var holding the API key; None = send no Authorization header"
    )
    timeout: float = Field(30.0, gt=0, description="seconds per attempt (connect and read)")
    max_retries: int = Field(3, ge=0, description="extra attempts on 429, 5xx, timeouts and connection errors")
    backoff: float = Field(0.5, ge=0, description="first wait between attempts in seconds, doubled each retry")
    max_backoff: float = Field(8.0, ge=0, description="cap on any wait, a Retry-After header included")
    temperature: float = Field(0.0, ge=0, description="sampling temperature (0 = as deterministic as it gets)")
    max_tokens: int | None = Field(512, gt=0, description="reply length cap in tokens; None = the server's default")

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"base_url must be an http:// or https:// URL such as http://127.0.0.1:8080/v1, got {value!r}"
            )
        return value.strip().rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _check_api_key_env(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("api_key_env must name an environment variable, or be None for endpoints without auth")
        return value

    @classmethod
    def from_env(cls, **overrides: Any) -> ChatConfig:
        """Build a config from ``EVERGRAPH_LLM_BASE_URL`` and ``EVERGRAPH_LLM_MODEL`` (both required unless given
        in ``overrides``), and the optional ``EVERGRAPH_LLM_API_KEY_ENV`` (an empty value means no auth) and
        ``EVERGRAPH_LLM_TIMEOUT`` (seconds). Keyword ``overrides`` win over the environment.

        Raises :class:`LLMConfigError` when a required value is missing or a value is invalid.
        """
        try:
            settings = load_settings()
        except SettingsError as error:
            raise LLMConfigError(str(error)) from None
        values: dict[str, Any] = {
            name: value
            for name, value in {
                "base_url": settings.llm_base_url,
                "model": settings.llm_model,
                "timeout": settings.llm_timeout,
            }.items()
            if value is not None
        }
        if settings.llm_api_key_env is not None:
            values["api_key_env"] = settings.llm_api_key_env.strip() or None
        values.update(overrides)
        missing = [var for name, var in _REQUIRED_ENV if not values.get(name)]
        if missing:
            raise LLMConfigError(
                f"LLM endpoint not configured: set {' and '.join(missing)} "
                "(e.g. EVERGRAPH_LLM_BASE_URL=http://127.0.0.1:8080/v1 EVERGRAPH_LLM_MODEL=my-model)"
            )
        try:
            return cls(**values)
        except ValidationError as exc:
            raise LLMConfigError(f"invalid LLM configuration from the environment/overrides: {exc}") from None


@dataclass(frozen=True)
class ChatReply:
    """One assistant reply.

    ``model`` is the model the server says answered (the configured one if it does not say); ``attempts`` counts
    the requests sent (1 = no retry); ``usage`` holds the integer token counts the server reported (may be empty);
    ``latency_s`` is the wall time of the whole call, retries and waits included.
    """

    text: str
    model: str
    attempts: int
    usage: dict[str, int] = field(default_factory=dict)
    latency_s: float = 0.0


class ChatClient:
    """Sends chat-completions requests to ``config.base_url``, retrying transient failures.

    ``transport`` replaces httpx's network transport (tests, proxies); ``sleep`` is called with each back-off wait
    in seconds (default ``time.sleep``). One client holds one connection pool: reuse it, and close it (or use it
    as a context manager) when done.
    """

    def __init__(
        self,
        config: ChatConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._url = f"{config.base_url}/chat/completions"
        self._sleep = sleep
        self._http = httpx.Client(timeout=httpx.Timeout(config.timeout), transport=transport)

    def close(self) -> None:
        """Close the connection pool. The client cannot be used afterwards."""
        self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def complete(self, messages: Sequence[Mapping[str, str]]) -> ChatReply:
        """Ask for one reply to ``messages`` (``[{"role": ..., "content": ...}, ...]``) and return it.

        Raises :class:`LLMConfigError` before sending anything when the messages or the API key are missing, and
        :class:`LLMError` when the endpoint refuses the request, keeps failing after all retries, or answers with
        something that is not an OpenAI chat completion.
        """
        cfg = self.config
        body: dict[str, Any] = {
            "model": cfg.model,
            "messages": _check_messages(messages),
            "temperature": cfg.temperature,
        }
        if cfg.max_tokens is not None:
            body["max_tokens"] = cfg.max_tokens
        headers = self._headers()
        total = cfg.max_retries + 1
        start = time.monotonic()
        failure = ""
        status: int | None = None
        for attempt in range(1, total + 1):
            retry_after: float | None = None
            try:
                response = self._http.post(self._url, json=body, headers=headers)
            except httpx.TransportError as exc:  # timeouts, refused connections, broken reads
                status = None
                kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
                failure = f"{kind} ({type(exc).__name__}: {exc or 'no detail'})"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return self._reply(response, attempt=attempt, start=start)
                message = _server_message(response)
                if status not in _RETRY_STATUSES:
                    raise LLMError(
                        f"POST {self._url} was refused with HTTP {status}: {message} ({self._hint(status)})",
                        status=status,
                        attempts=attempt,
                    )
                failure = f"HTTP {status}: {message}"
                retry_after = _retry_after(response)
            if attempt == total:
                break
            wait = min(retry_after if retry_after is not None else cfg.backoff * 2 ** (attempt - 1), cfg.max_backoff)
            log.warning("LLM attempt %d/%d to %s: %s; retrying in %.2fs", attempt, total, self._url, failure, wait)
            self._sleep(wait)
        if status is None:
            advice = "check that the server is running and base_url is right, or raise timeout/max_retries"
        else:
            advice = "the endpoint is overloaded or failing: try again later, or raise max_retries/max_backoff"
        raise LLMError(
            f"POST {self._url} failed after {total} attempt(s); last: {failure} ({advice})",
            status=status,
            attempts=total,
        )

    def _headers(self) -> dict[str, str]:
        name = self.config.api_key_env
        if name is None:
            return {}
        key = os.environ.get(name)
        if not key:
            raise LLMConfigError(
                f"no API key: set {name} (or api_key_env=None for endpoints without auth); nothing was sent"
            )
        return {"Authorization": f"Bearer {key}"}

    def _hint(self, status: int) -> str:
        cfg = self.config
        if status in (401, 403):
            if cfg.api_key_env is None:
                return "the endpoint wants a key: set api_key_env to the env var that holds it"
            return f"check the API key in the {cfg.api_key_env} environment variable"
        if status == 404:
            return f"check base_url (should end in /v1 for OpenAI; now {cfg.base_url}) and model ({cfg.model!r})"
        if status in (400, 422):
            return "the request was refused; the server's message shows why"
        return "not retried; the server's message shows why"

    def _reply(self, response: httpx.Response, *, attempt: int, start: float) -> ChatReply:
        try:
            payload = response.json()
            text = payload["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            text = None
            payload = None
        if not isinstance(text, str):
            raise LLMError(
                f"{self._url} answered HTTP {response.status_code} without choices[0].message.content: the endpoint "
                f"is not OpenAI-compatible (check base_url); body starts {_excerpt(response.text)!r}",
                status=response.status_code,
                attempts=attempt,
            )
        usage_raw = payload.get("usage") if isinstance(payload, dict) else None
        usage = {
            k: v
            for k, v in (usage_raw.items() if isinstance(usage_raw, dict) else ())
            if isinstance(v, int) and not isinstance(v, bool)
        }
        model = payload.get("model") if isinstance(payload.get("model"), str) else None
        latency = time.monotonic() - start
        log.debug("LLM reply from %s after %d attempt(s) in %.3fs", self._url, attempt, latency)
        return ChatReply(text=text, model=model or self.config.model, attempts=attempt, usage=usage, latency_s=latency)


def _check_messages(messages: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise LLMConfigError('messages must be a non-empty list like [{"role": "user", "content": "..."}]')
    checked = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise LLMConfigError(f"messages[{i}] must be a mapping with 'role' and 'content', got {type(message)}")
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not role:
            raise LLMConfigError(f"messages[{i}] needs a non-empty str 'role' (system, user or assistant)")
        if not isinstance(content, str):
            raise LLMConfigError(f"messages[{i}] needs a str 'content', got {type(content).__name__}")
        checked.append(dict(message))
    return checked


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


def _server_message(response: httpx.Response) -> str:
    """The error message in an OpenAI-style body ``{"error": {"message": ...}}``, else an excerpt of the body."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        for candidate in (error, payload.get("message"), payload.get("detail")):
            if isinstance(candidate, str):
                return candidate
    return _excerpt(response.text) or "(empty body)"


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds, or ``None`` when absent or not a number (HTTP dates are ignored)."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return max(seconds, 0.0)
