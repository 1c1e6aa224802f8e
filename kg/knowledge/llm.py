"""A client for any OpenAI-compatible chat-completions endpoint (``POST {base_url}/chat/completions``) through
the official ``openai`` SDK (requests, retries, timeouts, streaming with :meth:`ChatClient.stream`).

Defaults (see :class:`ChatConfig`): 30 s timeout per attempt, 3 extra attempts on HTTP 408, 409, 429, 5xx,
timeouts and connection errors, with exponential back-off from 0.5 s doubled each retry and capped at 8 s (a
``Retry-After`` header in seconds is honoured up to that cap), temperature 0.0 and at most 512 reply tokens. The
API key is read from the environment variable named by ``api_key_env`` (default ``OPENAI_API_KEY``) at request
time and is never logged. Any other 4xx answer is not retried: it raises :class:`LLMError` at once, with a hint of
what to check.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import openai
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from evergraph.kg.errors import LLMConfigError, LLMError, SettingsError
from evergraph.kg.settings import load_settings

__all__ = ["ChatClient", "ChatConfig", "ChatReply", "LLMConfigError", "LLMError"]

log = logging.getLogger(__name__)

_EXCERPT = 200  # characters of a server body quoted in error messages
_RETRY_STATUSES = frozenset({408, 409, 429, *range(500, 600)})  # what the SDK retries
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


class _SDKClient(openai.OpenAI):
    """The official SDK client, with :class:`ChatConfig`'s back-off schedule (``backoff`` doubled each retry,
    a ``Retry-After`` in seconds honoured, both capped at ``max_backoff``), an injectable ``sleep`` and one warning
    per retry. The SDK does the requests, the retries (408, 409, 429, 5xx, timeouts, connection errors) and the
    parsing."""

    def __init__(self, *, chat: ChatConfig, sleep: Callable[[float], None], url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._chat = chat
        self._sleep = sleep
        self._url = url

    def _calculate_retry_timeout(self, remaining_retries: int, options: Any, response_headers: Any = None) -> float:
        retries_taken = self._chat.max_retries - remaining_retries
        retry_after = _retry_after(response_headers)
        wait = retry_after if retry_after is not None else self._chat.backoff * 2**retries_taken
        return min(wait, self._chat.max_backoff)

    def _sleep_for_retry(self, *, retries_taken: int, max_retries: int, options: Any, response: Any) -> None:
        wait = self._calculate_retry_timeout(
            max_retries - retries_taken, options, response.headers if response else None
        )
        failure = "timed out or connection failed" if response is None else f"HTTP {response.status_code}"
        if response is not None:
            failure += f": {_server_message(response)}"
        log.warning(
            "LLM attempt %d/%d to %s: %s; retrying in %.2fs",
            retries_taken + 1,
            max_retries + 1,
            self._url,
            failure,
            wait,
        )
        self._sleep(wait)


class ChatClient:
    """Sends chat-completions requests to ``config.base_url`` through the official ``openai`` SDK, which retries
    transient failures (on :class:`ChatConfig`'s schedule) and streams.

    ``transport`` replaces the HTTP transport (tests, proxies); ``sleep`` is called with each back-off wait in
    seconds (default ``time.sleep``). One client holds one connection pool: reuse it (it is thread-safe), and
    close it (or use it as a context manager) when done.
    """

    def __init__(
        self,
        config: ChatConfig,
        *,
        transport: Any | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._url = f"{config.base_url}/chat/completions"
        self._sent = threading.local()  # requests sent by the current call of this thread (retries included)

        def count(request: Any) -> None:
            self._sent.count = getattr(self._sent, "count", 0) + 1

        http = openai.DefaultHttpxClient(transport=transport, event_hooks={"request": [count]})
        self._sdk = _SDKClient(
            chat=config,
            sleep=sleep,
            url=self._url,
            base_url=config.base_url,
            api_key="set-per-request",  # the real key (or none) goes in each request's headers
            timeout=config.timeout,
            max_retries=config.max_retries,
            http_client=http,
        )

    def close(self) -> None:
        """Close the connection pool. The client cannot be used afterwards."""
        self._sdk.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _request(self, messages: Sequence[Mapping[str, str]], *, stream: bool = False) -> dict[str, Any]:
        cfg = self.config
        request: dict[str, Any] = {
            "model": cfg.model,
            "messages": _check_messages(messages),
            "temperature": cfg.temperature,
            "extra_headers": self._headers(),
        }
        if cfg.max_tokens is not None:
            request["max_tokens"] = cfg.max_tokens
        if stream:
            request["stream"] = True
        return request

    def complete(self, messages: Sequence[Mapping[str, str]]) -> ChatReply:
        """Ask for one reply to ``messages`` (``[{"role": ..., "content": ...}, ...]``) and return it.

        Raises :class:`LLMConfigError` before sending anything when the messages or the API key are missing, and
        :class:`LLMError` when the endpoint refuses the request, keeps failing after all retries, or answers with
        something that is not an OpenAI chat completion.
        """
        request = self._request(messages)
        start = time.monotonic()
        self._sent.count = 0
        try:
            raw = self._sdk.chat.completions.with_raw_response.create(**request)
        except openai.APIError as error:
            raise self._error(error) from None
        return self._reply(raw.http_response, attempt=raw.retries_taken + 1, start=start)

    def stream(self, messages: Sequence[Mapping[str, str]]) -> Iterator[str]:
        """Ask for one reply to ``messages`` and yield its text as it arrives (server-sent events); the same
        errors as :meth:`complete` (a failure before the first piece is retried like there)."""
        request = self._request(messages, stream=True)
        self._sent.count = 0
        try:
            with self._sdk.chat.completions.create(**request) as chunks:
                for chunk in chunks:
                    for choice in chunk.choices or ():
                        if choice.delta is not None and choice.delta.content:
                            yield choice.delta.content
        except openai.APIError as error:
            raise self._error(error) from None

    def _error(self, error: openai.APIError) -> LLMError:
        """Our :class:`LLMError` (status, attempts, a hint of what to check) for an SDK error."""
        attempts = max(getattr(self._sent, "count", 0), 1)
        if isinstance(error, openai.APIStatusError):
            status = error.status_code
            message = _server_message(error.response)
            if status in _RETRY_STATUSES:
                advice = "the endpoint is overloaded or failing: try again later, or raise max_retries/max_backoff"
                return LLMError(
                    f"POST {self._url} failed after {attempts} attempt(s); last: HTTP {status}: {message} ({advice})",
                    status=status,
                    attempts=attempts,
                )
            return LLMError(
                f"POST {self._url} was refused with HTTP {status}: {message} ({self._hint(status)})",
                status=status,
                attempts=attempts,
            )
        if isinstance(error, openai.APIConnectionError):
            kind = "timed out" if isinstance(error, openai.APITimeoutError) else "connection failed"
            cause = error.__cause__ or error
            advice = "check that the server is running and base_url is right, or raise timeout/max_retries"
            return LLMError(
                f"POST {self._url} failed after {attempts} attempt(s); last: {kind} "
                f"({type(cause).__name__}: {cause or 'no detail'}) ({advice})",
                status=None,
                attempts=attempts,
            )
        return LLMError(f"POST {self._url}: {error} (the endpoint is not OpenAI-compatible?)", attempts=attempts)

    def _headers(self) -> dict[str, Any]:
        name = self.config.api_key_env
        if name is None:
            return {"Authorization": openai.Omit()}  # endpoints without auth get no Authorization header
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

    def _reply(self, response: Any, *, attempt: int, start: float) -> ChatReply:
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


def _server_message(response: Any) -> str:
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


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    """``Retry-After`` of response ``headers`` in seconds, or ``None`` when absent or not a number (HTTP dates are
    ignored)."""
    raw = None if headers is None else headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return max(seconds, 0.0)
