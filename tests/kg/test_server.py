"""The HTTP knowledge API under uvicorn: auth, limits, parity with the in-process client, ``/ask`` through a fake
OpenAI endpoint, and champion hot swaps (and a broken champion) while clients keep querying."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from evergraph.kg.errors import KnowledgeClientError
from evergraph.kg.knowledge.knowledge import Knowledge
from evergraph.kg.knowledge.llm import ChatConfig
from evergraph.kg.service.client import KnowledgeClient
from evergraph.kg.service.server import create_app
from evergraph.kg.service.serving import ChampionWatcher
from evergraph.kg.store.bundle import Bundle
from evergraph.kg.store.bundle_writer import switch_pointer
from evergraph.kg.store.home import EvergraphHome
from tests.conftest import born_person, wait_for
from tests.fake_openai import FakeOpenAI
from tests.servers import running

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SNAPSHOT_OF = {"1": 0, "2": 1}  # the template home: bundle v1 holds snapshot 0, v2 snapshot 1
UNKNOWN_QUESTION = "Who is Zorblax Quintaine?"


# -- a real server in a thread ---------------------------------------------------------------------------------


@contextmanager
def watching(home: EvergraphHome, **options: Any) -> Iterator[ChampionWatcher]:
    """A started :class:`ChampionWatcher` polling every 50 ms, stopped afterwards."""
    watcher = ChampionWatcher(home, poll_interval=0.05, **options).start()
    try:
        yield watcher
    finally:
        watcher.stop()
        watcher.current().close()


# -- shared servers over the (read-only) template home ---------------------------------------------------------


@pytest.fixture(scope="module")
def watcher(knowledge_home_template: EvergraphHome) -> Iterator[ChampionWatcher]:
    with watching(knowledge_home_template) as watcher:
        yield watcher


@pytest.fixture(scope="module")
def url(watcher: ChampionWatcher) -> Iterator[str]:
    """A server without a token and without an LLM."""
    with running(create_app(watcher.current)) as base:
        yield base


@pytest.fixture(scope="module")
def secured_url(watcher: ChampionWatcher) -> Iterator[str]:
    """A server requiring the bearer token ``s3cret``."""
    with running(create_app(watcher.current, token=TOKEN)) as base:
        yield base


@pytest.fixture(scope="module")
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def local(champion_bundle: Path) -> Knowledge:
    return Knowledge.load(champion_bundle)


@pytest.fixture(scope="module")
def person(local: Knowledge) -> str:
    return born_person(local.bundle)


# -- auth ------------------------------------------------------------------------------------------------------

QUERIES = [
    ("GET", "/version", None),
    ("GET", "/entities?name=Paris", None),
    ("GET", "/facts?entity=Paris", None),
    ("GET", "/predict?head=Paris&relation=located%20in", None),
    ("GET", "/similar?entity=Paris", None),
    ("POST", "/guide", {"question": "What is Paris located in?"}),
]


def test_healthz_needs_no_token(url: str, secured_url: str) -> None:
    for base in (url, secured_url):
        response = httpx.get(f"{base}/healthz")
        assert response.status_code == 200 and response.json() == {"status": "ok", "version": "2"}


@pytest.mark.parametrize(("method", "path", "body"), QUERIES)
def test_every_query_needs_the_token(secured_url: str, method: str, path: str, body: dict[str, str] | None) -> None:
    with httpx.Client(base_url=secured_url, timeout=30) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            refused = client.request(method, path, json=body, headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["www-authenticate"] == "Bearer" and "bearer token" in refused.json()["detail"]
        accepted = client.request(method, path, json=body, headers=AUTH)
        assert accepted.status_code == 200 and accepted.json()["version"] == "2"


def test_ask_needs_the_token_too(secured_url: str) -> None:
    response = httpx.post(f"{secured_url}/ask", json={"question": UNKNOWN_QUESTION})
    assert response.status_code == 401


# -- version, headers, schema -----------------------------------------------------------------------------------


def test_version_and_header(http: httpx.Client, local: Knowledge) -> None:
    response = http.get("/version")
    assert response.status_code == 200 and response.headers["X-Evergraph-Version"] == "2"
    info = response.json()
    assert (info["version"], info["snapshot"]) == ("2", 1)
    assert info["num_entities"] == local.bundle.model.num_entities and info["num_facts"] == len(local.bundle.facts)
    for method, path, body in QUERIES:
        assert http.request(method, path, json=body).headers["X-Evergraph-Version"] == "2", path


def test_openapi_lists_every_endpoint(http: httpx.Client) -> None:
    schema = http.get("/openapi.json").json()
    expected = {"/guide", "/ask", "/facts", "/predict", "/similar", "/entities", "/version", "/healthz"}
    assert expected <= set(schema["paths"])
    assert "post" in schema["paths"]["/guide"] and "post" in schema["paths"]["/ask"]


# -- limits give 4xx, never 5xx --------------------------------------------------------------------------------


def test_a_too_long_question_is_413(http: httpx.Client) -> None:
    for path in ("/guide", "/ask"):
        response = http.post(path, json={"question": "Paris " * 400})
        assert response.status_code == 413 and "2000" in response.json()["detail"]
    assert http.post("/guide", json={"question": "x" * 2000}).status_code == 200


@pytest.mark.parametrize("body", [{"question": ""}, {"question": "   "}, {}, {"question": "Paris", "extra": 1}])
def test_malformed_questions_are_422(http: httpx.Client, body: dict[str, Any]) -> None:
    assert http.post("/guide", json=body).status_code == 422


@pytest.mark.parametrize(
    "path",
    [
        "/similar?entity=Paris&k=0",
        "/similar?entity=Paris&k=101",
        "/entities?name=Paris&k=0",
        "/facts?entity=Paris&limit=101",
        "/predict?head=Paris&relation=located%20in&k=101",
        "/predict?head=Paris&relation=located%20in&direction=sideways",
        "/facts",
        "/facts?entity=",
    ],
)
def test_out_of_range_parameters_are_422(http: httpx.Client, path: str) -> None:
    assert http.get(path).status_code == 422


def test_k_at_the_limits_is_fine(http: httpx.Client) -> None:
    assert len(http.get("/similar?entity=Paris&k=1").json()["neighbours"]) == 1
    assert http.get("/entities?name=Paris&k=100").status_code == 200


def test_an_unknown_entity_is_an_answer(http: httpx.Client) -> None:
    response = http.get("/facts", params={"entity": "Zorblax Quintaine"})
    assert response.status_code == 200
    body = response.json()
    assert body["found"] is False and body["facts"] == [] and "Zorblax Quintaine" in body["message"]
    predicted = http.get("/predict", params={"head": "Paris", "relation": "flies to"}).json()
    assert predicted["found"] is False and "not a relation" in predicted["message"]


# -- the remote client equals the in-process one --------------------------------------------------------------


def test_remote_results_equal_local_ones(secured_url: str, champion_bundle: Path, person: str) -> None:
    with (
        KnowledgeClient.remote(secured_url, token=TOKEN) as remote,
        KnowledgeClient.local(bundle=champion_bundle, chat=None) as local,
    ):
        assert remote.version() == local.version()
        for name in ("Paris", "paris", "Pariss", person):
            assert remote.entity(name) == local.entity(name), name
            assert remote.facts(name, limit=7) == local.facts(name, limit=7), name
            assert remote.similar(name, k=4) == local.similar(name, k=4), name
        queries = [("Paris", "located in", "tail"), (person, "born in", "tail"), ("Paris", "born in", "head")]
        for head, relation, direction in queries:
            expected = local.predict(head, relation, k=5, direction=direction)
            assert expected.found and remote.predict(head, relation, k=5, direction=direction) == expected
        for question in (f"Where was {person} born?", "What is Paris located in?", UNKNOWN_QUESTION):
            assert remote.guide(question) == local.guide(question), question
        facts = remote.facts("Paris")
        assert facts.found and facts.facts and all(f.kind == "known" for f in facts.facts)
        guided = remote.guide(f"Where was {person} born?")
        assert not guided.abstained and "[1]" in guided.context and person in guided.context


def test_remote_without_the_token(secured_url: str) -> None:
    with KnowledgeClient.remote(secured_url) as client, pytest.raises(KnowledgeClientError) as caught:
        client.facts("Paris")
    assert caught.value.status == 401 and "token" in str(caught.value)
    with KnowledgeClient.remote(secured_url, token="wrong") as client, pytest.raises(KnowledgeClientError) as caught:
        client.guide("Where is Paris?")
    assert caught.value.status == 401


def test_remote_limits_raise_with_the_servers_reason(url: str) -> None:
    with KnowledgeClient.remote(url) as client:
        with pytest.raises(KnowledgeClientError) as caught:
            client.guide("Paris " * 400)
        assert caught.value.status == 413 and "characters" in str(caught.value)
        with pytest.raises(KnowledgeClientError) as caught:
            client.similar("Paris", k=0)
        assert caught.value.status == 422


# -- /ask through a fake OpenAI endpoint -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def llm(fake: FakeOpenAI) -> FakeOpenAI:
    """The module's fake endpoint, emptied for each test."""
    fake.requests.clear()
    fake.script.clear()
    fake.reply = lambda messages: "X [1] [2]."
    return fake


@pytest.fixture(scope="module")
def ask_url(knowledge_home_template: EvergraphHome, fake: FakeOpenAI) -> Iterator[str]:
    chat = ChatConfig(base_url=fake.base_url, model="m", api_key_env=None, backoff=0.01)
    with watching(knowledge_home_template, chat=chat) as watcher, running(create_app(watcher.current)) as base:
        yield base


def test_ask_sends_the_numbered_facts_and_parses_citations(ask_url: str, llm: FakeOpenAI, person: str) -> None:
    question = f"Where was {person} born?"
    response = httpx.post(f"{ask_url}/ask", json={"question": question}, timeout=30)
    assert response.status_code == 200 and response.headers["X-Evergraph-Version"] == "2"
    assert len(llm.requests) == 1
    sent = llm.requests[0].json
    assert sent["model"] == "m" and "authorization" not in llm.requests[0].headers
    user = sent["messages"][-1]["content"]
    assert "[1]" in user and "[2]" in user and person in user
    answer = response.json()
    assert answer["answer"] == "X [1] [2]." and not answer["abstained"] and answer["llm_model"] == "m"
    assert answer["citations"] == [1, 2] and (answer["version"], answer["snapshot"]) == ("2", 1)
    assert answer["facts"] == answer["guide"]["facts"][:2] and [f["citation"] for f in answer["facts"]] == [1, 2]
    assert answer["facts"][0]["text"] in user


def test_ask_keeps_only_citations_of_facts_it_was_given(ask_url: str, llm: FakeOpenAI, person: str) -> None:
    llm.reply = lambda messages: "Probably [999], see [2]."
    answer = httpx.post(f"{ask_url}/ask", json={"question": f"Where was {person} born?"}, timeout=30).json()
    assert answer["citations"] == [2] and [f["citation"] for f in answer["facts"]] == [2]


def test_ask_abstains_without_calling_the_llm(ask_url: str, llm: FakeOpenAI) -> None:
    response = httpx.post(f"{ask_url}/ask", json={"question": UNKNOWN_QUESTION}, timeout=30)
    assert response.status_code == 200
    answer = response.json()
    assert answer["abstained"] and answer["citations"] == [] and answer["facts"] == [] and answer["answer"]
    assert answer["llm_model"] is None and llm.requests == []


def test_ask_retries_a_429(ask_url: str, llm: FakeOpenAI, person: str) -> None:
    llm.script = [(429, {"error": {"message": "slow down"}})]
    response = httpx.post(f"{ask_url}/ask", json={"question": f"Where was {person} born?"}, timeout=30)
    assert response.status_code == 200 and response.json()["answer"] == "X [1] [2]."
    assert len(llm.requests) == 2


def test_ask_reports_a_failing_llm_as_502(ask_url: str, llm: FakeOpenAI, person: str) -> None:
    llm.script = [(400, {"error": {"message": "bad model"}})]
    response = httpx.post(f"{ask_url}/ask", json={"question": f"Where was {person} born?"}, timeout=30)
    assert response.status_code == 502 and "LLM" in response.json()["detail"]


def test_ask_without_an_llm_is_503(http: httpx.Client, person: str) -> None:
    response = http.post("/ask", json={"question": f"Where was {person} born?"})
    assert response.status_code == 503 and "EVERGRAPH_LLM_BASE_URL" in response.json()["detail"]
    # an unanswerable question needs no LLM, so it is still answered
    assert http.post("/ask", json={"question": UNKNOWN_QUESTION}).json()["abstained"] is True


# -- champion hot swaps under load -----------------------------------------------------------------------------


def test_hot_swap_under_load_fails_no_request(knowledge_home: EvergraphHome) -> None:
    home = knowledge_home
    person = born_person(Bundle.load(home.bundle_dir("1")))  # known to both versions
    questions = [f"Where was {person} born?", "What is Paris located in?", "Who lives in Berlin?"]
    records: list[tuple[float, str, int, str | None, dict[str, Any] | str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(worker: int, base: str) -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            n = worker
            while not stop.is_set():
                n += 1
                started = time.monotonic()
                if n % 2:
                    response = client.post("/guide", json={"question": questions[n % len(questions)]})
                    path = "/guide"
                else:
                    response = client.get("/facts", params={"entity": "Paris" if n % 4 else person})
                    path = "/facts"
                try:
                    body: dict[str, Any] | str = response.json()
                except ValueError:
                    body = response.text
                with lock:
                    records.append(
                        (started, path, response.status_code, response.headers.get("X-Evergraph-Version"), body)
                    )

    with watching(home) as watcher, running(create_app(watcher.current)) as base:
        workers = [threading.Thread(target=load, args=(i, base), daemon=True) for i in range(8)]
        began = time.monotonic()
        for worker in workers:
            worker.start()

        def answered(*, after: float, by: str | None = None, count: int = 8) -> Callable[[], bool]:
            """Condition: ``count`` requests started after ``after`` were answered (by version ``by``)."""

            def enough() -> bool:
                with lock:
                    return sum(r[0] > after and by in (None, r[3]) for r in records) >= count

            return enough

        try:
            assert wait_for(answered(after=began), timeout=60), "the load threads did not get going"
            for version in ("1", "2", "1"):  # roll back, promote again, roll back again
                switched = time.monotonic()
                switch_pointer(pointer=home.champion_pointer, bundle=home.bundle_dir(version), version=version)
                assert wait_for(lambda v=version: watcher.current().version == v), f"never swapped to {version}"
                assert wait_for(answered(after=switched, by=version, count=2), timeout=60), f"{version} never answered"
            settled = time.monotonic()
            assert wait_for(answered(after=settled, count=8), timeout=60), "no load after the last swap"
        finally:
            stop.set()
            for worker in workers:
                worker.join(30)
        assert watcher.swaps == 3
        with httpx.Client(base_url=base, timeout=30) as client:
            final = [client.get("/facts", params={"entity": "Paris"}) for _ in range(5)]
            final.append(client.post("/guide", json={"question": questions[0]}))

    assert len(records) > 50, "the load threads barely ran"
    failures = [(path, status, body) for _, path, status, _, body in records if status != 200]
    assert failures == []
    seen: set[str] = set()
    for started, path, _, header, body in records:
        assert isinstance(body, dict) and header in SNAPSHOT_OF and body["version"] == header, (path, header)
        seen.add(header)
        if path == "/guide":
            snapshot = SNAPSHOT_OF[header]
            assert body["snapshot"] == snapshot
            assert all(f["snapshot"] <= snapshot for f in body["facts"] if f["kind"] == "known")
            assert all(f["snapshot"] == snapshot for f in body["facts"] if f["kind"] == "inferred")
        else:
            assert all(f["snapshot"] <= SNAPSHOT_OF[header] for f in body["facts"])
        if started > settled:
            assert header == "1", "a request after the final rollback was answered by v2"
    assert seen == {"1", "2"}
    assert all(r.status_code == 200 and r.headers["X-Evergraph-Version"] == "1" for r in final)
    assert all(r.json()["version"] == "1" for r in final) and final[-1].json()["snapshot"] == 0


def test_a_broken_champion_does_not_take_serving_down(knowledge_home: EvergraphHome) -> None:
    home = knowledge_home
    broken = home.bundle_dir("9")
    shutil.copytree(home.bundle_dir("1"), broken)
    (broken / "weights.pt").write_bytes(b"not a torch file")
    with watching(home) as watcher, running(create_app(watcher.current)) as base:
        home.champion_pointer.write_text(json.dumps({"version": "9", "bundle": "bundles/v9"}))
        assert wait_for(lambda: watcher._failed is not None), "the watcher never tried the broken bundle"
        assert watcher.refresh() is False
        assert watcher.current().version == "2" and watcher.swaps == 0
        health = httpx.get(f"{base}/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok", "version": "2"}
        guided = httpx.post(f"{base}/guide", json={"question": "What is Paris located in?"}, timeout=30)
        assert guided.status_code == 200 and guided.json()["version"] == "2"
        assert guided.headers["X-Evergraph-Version"] == "2"
        # a good champion afterwards is still picked up
        switch_pointer(pointer=home.champion_pointer, bundle=home.bundle_dir("1"), version="1")
        assert wait_for(lambda: httpx.get(f"{base}/healthz").json()["version"] == "1")
        assert watcher.swaps == 1
