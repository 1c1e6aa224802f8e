"""evergraph.kg.knowledge.llm against a real HTTP fake of an OpenAI-compatible endpoint (tests/fake_openai.py)."""

from __future__ import annotations

import socket

import httpx2
import pytest
from pydantic import ValidationError

from evergraph.kg.errors import EvergraphError, LLMConfigError, LLMError
from evergraph.kg.knowledge.llm import ChatClient, ChatConfig, ChatReply
from tests.fake_openai import FakeOpenAI

MESSAGES = [{"role": "system", "content": "Cite sources."}, {"role": "user", "content": "Who founded Rome?"}]
ERROR_503 = {"error": {"message": "The engine is overloaded", "type": "server_error"}}


class Waits(list[float]):
    """A fake ``sleep`` that records each wait instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-123")
    return "sk-test-123"


def client(fake: FakeOpenAI, waits: Waits | None = None, **settings: object) -> ChatClient:
    config = ChatConfig(base_url=fake.base_url, model="fake-model", **settings)
    return ChatClient(config, sleep=waits if waits is not None else Waits())


def test_200_reply_is_parsed_and_request_is_openai_shaped(fake_openai: FakeOpenAI, api_key: str) -> None:
    with client(fake_openai) as chat:
        reply = chat.complete(MESSAGES)

    assert isinstance(reply, ChatReply)
    assert reply.text == "Answer based on [1]."
    assert reply.model == "fake-model"
    assert reply.attempts == 1
    assert reply.usage == {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
    assert reply.latency_s > 0
    [request] = fake_openai.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {api_key}"
    assert request.json == {"model": "fake-model", "messages": MESSAGES, "temperature": 0.0, "max_tokens": 512}


def test_trailing_slash_and_no_auth_and_no_max_tokens(fake_openai: FakeOpenAI) -> None:
    fake_openai.reply = lambda messages: messages[-1]["content"].upper()
    config = ChatConfig(base_url=fake_openai.base_url + "/", model="m", api_key_env=None, max_tokens=None)
    with ChatClient(config) as chat:
        assert chat.complete([{"role": "user", "content": "hi"}]).text == "HI"
    [request] = fake_openai.requests
    assert request.path == "/v1/chat/completions"
    assert "authorization" not in request.headers
    assert "max_tokens" not in request.json


def test_429_then_200_is_retried_with_backoff(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = [(429, {"error": {"message": "Rate limit reached"}})]
    waits = Waits()
    with client(fake_openai, waits, backoff=0.25) as chat:
        reply = chat.complete(MESSAGES)
    assert reply.attempts == 2
    assert len(fake_openai.requests) == 2
    assert waits == [0.25]


def test_503_every_time_gives_up_after_max_retries(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = [(503, ERROR_503)] * 3
    waits = Waits()
    with client(fake_openai, waits, max_retries=2, backoff=0.5) as chat, pytest.raises(LLMError) as caught:
        chat.complete(MESSAGES)
    error = caught.value
    assert isinstance(error, EvergraphError)
    assert (error.status, error.attempts) == (503, 3)
    assert "HTTP 503" in str(error) and "The engine is overloaded" in str(error) and "3 attempt" in str(error)
    assert len(fake_openai.requests) == 3
    assert waits == [0.5, 1.0]  # doubled each retry, none after the last attempt


def test_backoff_is_capped(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = [(500, ERROR_503)] * 4
    waits = Waits()
    with client(fake_openai, waits, max_retries=4, backoff=1.0, max_backoff=3.0) as chat:
        assert chat.complete(MESSAGES).attempts == 5
    assert waits == [1.0, 2.0, 3.0, 3.0]


def test_retry_after_is_honoured_up_to_the_cap(fake_openai: FakeOpenAI) -> None:
    limited = {"error": {"message": "slow down"}}
    fake_openai.script = [(429, limited, {"Retry-After": "2"}), (429, limited, {"Retry-After": "120"})]
    waits = Waits()
    with client(fake_openai, waits, backoff=0.5, max_backoff=5.0) as chat:
        assert chat.complete(MESSAGES).attempts == 3
    assert waits == [2.0, 5.0]


def test_401_is_not_retried_and_names_the_key_env_var(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = [(401, {"error": {"message": "Incorrect API key provided"}})]
    waits = Waits()
    with client(fake_openai, waits) as chat, pytest.raises(LLMError) as caught:
        chat.complete(MESSAGES)
    assert (caught.value.status, caught.value.attempts) == (401, 1)
    assert "Incorrect API key provided" in str(caught.value)
    assert "OPENAI_API_KEY" in str(caught.value)
    assert len(fake_openai.requests) == 1
    assert waits == []


def test_404_hint_mentions_base_url(fake_openai: FakeOpenAI) -> None:
    config = ChatConfig(base_url=fake_openai.base_url.removesuffix("/v1"), model="fake-model")
    with ChatClient(config, sleep=Waits()) as chat, pytest.raises(LLMError) as caught:
        chat.complete(MESSAGES)
    assert caught.value.status == 404
    assert "base_url" in str(caught.value) and "/v1" in str(caught.value)
    assert [r.path for r in fake_openai.requests] == ["/chat/completions"]


def test_422_is_not_retried_and_shows_the_server_message(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = [(422, {"detail": "temperature must be <= 2"})]
    with client(fake_openai) as chat, pytest.raises(LLMError, match="temperature must be <= 2") as caught:
        chat.complete(MESSAGES)
    assert caught.value.attempts == 1
    assert len(fake_openai.requests) == 1


def test_connection_refused_is_retried_then_raises() -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    waits = Waits()
    config = ChatConfig(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=2, timeout=2.0)
    with ChatClient(config, sleep=waits) as chat, pytest.raises(LLMError) as caught:
        chat.complete(MESSAGES)
    assert caught.value.status is None
    assert caught.value.attempts == 3
    assert "connection failed" in str(caught.value) and "server is running" in str(caught.value)
    assert waits == [0.5, 1.0]


def test_timeout_is_retried() -> None:
    calls: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx2.ReadTimeout("read timed out", request=request)
        return httpx2.Response(200, json={"choices": [{"message": {"role": "assistant", "content": "ok"}}]})

    config = ChatConfig(base_url="http://llm.invalid/v1", model="m")
    with ChatClient(config, transport=httpx2.MockTransport(handler), sleep=Waits()) as chat:
        reply = chat.complete(MESSAGES)
    assert (reply.text, reply.model, reply.attempts, reply.usage) == ("ok", "m", 2, {})


def test_missing_key_env_var_raises_before_any_request(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    with client(fake_openai) as chat, pytest.raises(LLMConfigError, match="set OPENAI_API_KEY") as caught:
        chat.complete(MESSAGES)
    assert "api_key_env=None" in str(caught.value)
    assert caught.value.attempts == 0
    assert fake_openai.requests == []


def test_key_is_not_logged(fake_openai: FakeOpenAI, api_key: str, caplog: pytest.LogCaptureFixture) -> None:
    fake_openai.script = [(503, ERROR_503)]
    with caplog.at_level("DEBUG", logger="evergraph.kg.knowledge.llm"), client(fake_openai) as chat:
        chat.complete(MESSAGES)
    assert "retrying" in caplog.text
    assert api_key not in caplog.text


@pytest.mark.parametrize("body", [{"result": "hello"}, {"choices": []}, "plain text, not JSON"])
def test_non_openai_200_body_raises(fake_openai: FakeOpenAI, body: object) -> None:
    fake_openai.script = [(200, body)]
    with client(fake_openai) as chat, pytest.raises(LLMError, match="not OpenAI-compatible") as caught:
        chat.complete(MESSAGES)
    assert caught.value.status == 200
    assert len(fake_openai.requests) == 1


def test_long_body_is_excerpted(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = [(200, "x" * 5000)]
    with client(fake_openai) as chat, pytest.raises(LLMError) as caught:
        chat.complete(MESSAGES)
    assert "x" * 200 + "..." in str(caught.value)
    assert "x" * 201 not in str(caught.value)


@pytest.mark.parametrize(
    "messages",
    [[], [{"role": "user"}], [{"content": "hi"}], [{"role": "user", "content": 3}], "hello"],
)
def test_bad_messages_are_refused_before_sending(fake_openai: FakeOpenAI, messages: object) -> None:
    with client(fake_openai) as chat, pytest.raises(LLMError):
        chat.complete(messages)  # type: ignore[arg-type]
    assert fake_openai.requests == []


def test_from_env_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVERGRAPH_LLM_BASE_URL", "http://127.0.0.1:8080/v1")
    monkeypatch.setenv("EVERGRAPH_LLM_MODEL", "llama")
    monkeypatch.setenv("EVERGRAPH_LLM_API_KEY_ENV", "MY_KEY")
    monkeypatch.setenv("EVERGRAPH_LLM_TIMEOUT", "12.5")
    config = ChatConfig.from_env()
    assert (config.base_url, config.model, config.api_key_env, config.timeout) == (
        "http://127.0.0.1:8080/v1",
        "llama",
        "MY_KEY",
        12.5,
    )
    assert ChatConfig.from_env(model="other", max_retries=0).model == "other"


def test_from_env_defaults_optional_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("EVERGRAPH_LLM_API_KEY_ENV", "EVERGRAPH_LLM_TIMEOUT", "EVERGRAPH_LLM_MODEL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("EVERGRAPH_LLM_BASE_URL", "https://api.example.com/v1")
    config = ChatConfig.from_env(model="gpt")
    assert (config.api_key_env, config.timeout) == ("OPENAI_API_KEY", 30.0)


def test_from_env_names_missing_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVERGRAPH_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("EVERGRAPH_LLM_MODEL", raising=False)
    with pytest.raises(LLMConfigError, match="EVERGRAPH_LLM_BASE_URL and EVERGRAPH_LLM_MODEL"):
        ChatConfig.from_env()
    with pytest.raises(LLMConfigError, match="set EVERGRAPH_LLM_MODEL"):
        ChatConfig.from_env(base_url="http://127.0.0.1:8080/v1")


def test_from_env_refuses_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVERGRAPH_LLM_BASE_URL", "http://127.0.0.1:8080/v1")
    monkeypatch.setenv("EVERGRAPH_LLM_MODEL", "llama")
    monkeypatch.setenv("EVERGRAPH_LLM_TIMEOUT", "soon")
    with pytest.raises(LLMConfigError, match="EVERGRAPH_LLM_TIMEOUT"):
        ChatConfig.from_env()
    monkeypatch.setenv("EVERGRAPH_LLM_TIMEOUT", "-1")
    with pytest.raises(LLMConfigError, match="timeout"):
        ChatConfig.from_env()


@pytest.mark.parametrize(
    "settings",
    [
        {"base_url": "ftp://host/v1"},
        {"base_url": "127.0.0.1:8080/v1"},
        {"timeout": -1.0},
        {"timeout": 0.0},
        {"max_retries": -1},
        {"max_tokens": 0},
        {"api_key_env": ""},
        {"unknown": 1},
    ],
)
def test_config_validation(settings: dict[str, object]) -> None:
    values: dict[str, object] = {"base_url": "http://127.0.0.1:8080/v1", "model": "m", **settings}
    with pytest.raises(ValidationError):
        ChatConfig(**values)


def test_config_is_frozen() -> None:
    config = ChatConfig(base_url="http://127.0.0.1:8080/v1", model="m")
    with pytest.raises(ValidationError):
        config.model = "other"  # type: ignore[misc]


def test_stream_yields_the_reply_as_it_arrives(fake_openai: FakeOpenAI) -> None:
    with client(fake_openai) as chat:
        whole = chat.complete(MESSAGES).text
        pieces = list(chat.stream(MESSAGES))
    assert len(pieces) > 1 and "".join(pieces) == whole
    assert fake_openai.requests[-1].json["stream"] is True


def test_stream_errors_are_ours(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = [(401, {"error": {"message": "Incorrect API key provided"}})]
    with client(fake_openai) as chat, pytest.raises(LLMError, match="OPENAI_API_KEY") as caught:
        list(chat.stream(MESSAGES))
    assert (caught.value.status, caught.value.attempts) == (401, 1)
