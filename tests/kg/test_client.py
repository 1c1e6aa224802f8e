"""``KnowledgeClient``: the in-process backend follows the champion (or stays pinned to one bundle), unknown names
are answers, and problems the caller must fix raise errors that say what to do."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evergraph.kg.errors import BundleError, KnowledgeClientError, LLMNotConfiguredError
from evergraph.kg.service.client import KnowledgeClient
from evergraph.kg.store.bundle import Bundle
from evergraph.kg.store.bundle_writer import switch_pointer
from evergraph.kg.store.home import EvergraphHome
from tests.conftest import born_person, wait_for

LLM_ENV = ("EVERGRAPH_LLM_BASE_URL", "EVERGRAPH_LLM_MODEL", "EVERGRAPH_LLM_API_KEY_ENV", "EVERGRAPH_LLM_TIMEOUT")


@pytest.fixture(autouse=True)
def no_llm(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LLM_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def pinned(champion_bundle: Path) -> Iterator[KnowledgeClient]:
    """A client pinned to the v2 bundle, built with no LLM in the environment."""
    with pytest.MonkeyPatch.context() as patch:
        for name in LLM_ENV:
            patch.delenv(name, raising=False)
        client = KnowledgeClient.local(bundle=champion_bundle)
    with client:
        yield client


@pytest.fixture(scope="module")
def person(champion_bundle: Path) -> str:
    """A person whose birthplace the graph knows."""
    return born_person(Bundle.load(champion_bundle))


def test_local_client_follows_the_champion(knowledge_home: EvergraphHome) -> None:
    with KnowledgeClient.local(home=knowledge_home, poll_interval=0.05) as client:
        info = client.version()
        assert (info.version, info.snapshot) == ("2", 1)
        assert client.facts("Paris").version == "2"
        switch_pointer(pointer=knowledge_home.champion_pointer, bundle=knowledge_home.bundle_dir("1"), version="1")
        started = time.monotonic()
        assert wait_for(lambda: client.version().version == "1"), "the client never followed the rollback"
        assert time.monotonic() - started < 5.0
        assert client.version().snapshot == 0
        assert client.guide("What is Paris located in?").version == "1" and client.facts("Paris").version == "1"


def test_a_bundle_client_is_pinned(knowledge_home: EvergraphHome) -> None:
    with (
        KnowledgeClient.local(bundle=knowledge_home.bundle_dir("2")) as pinned,
        KnowledgeClient.local(home=knowledge_home, watch=False) as unwatched,
        KnowledgeClient.local(home=knowledge_home, poll_interval=0.05) as following,
    ):
        switch_pointer(pointer=knowledge_home.champion_pointer, bundle=knowledge_home.bundle_dir("1"), version="1")
        assert wait_for(lambda: following.version().version == "1")
        assert pinned.version().version == "2" and pinned.facts("Paris").version == "2"
        assert unwatched.version().version == "2"


def test_unknown_names_are_answers_with_suggestions(pinned: KnowledgeClient) -> None:
    facts = pinned.facts("Pariss")
    assert not facts.found and facts.facts == [] and facts.entity is None
    assert "'Pariss' is not an entity" in facts.message and "Paris" in facts.message
    assert "Paris" in [s.name for s in facts.suggestions]
    assert facts.version == "2"
    nothing = pinned.facts("Zorblax Quintaine")
    assert not nothing.found and "Zorblax Quintaine" in nothing.message
    search = pinned.entity("Zorblax")
    assert not search.found and search.matches == [] and "Zorblax" in search.message
    similar = pinned.similar("Atlantiss")
    assert not similar.found and similar.neighbours == [] and similar.message
    predicted = pinned.predict("Paris", "flies to")
    assert not predicted.found and "not a relation" in predicted.message and predicted.predictions == []
    assert not pinned.predict("Zorblax", "born in").found


def test_known_names_are_found(pinned: KnowledgeClient, person: str) -> None:
    facts = pinned.facts("paris", limit=3)
    assert facts.found and facts.entity is not None and facts.entity.name == "Paris" and len(facts.facts) == 3
    predicted = pinned.predict(person, "born in", k=3)
    assert predicted.found and predicted.relation is not None and predicted.relation.label == "born_in"
    assert len(predicted.predictions) == 3 and predicted.known


def test_ask_without_an_llm(pinned: KnowledgeClient, person: str) -> None:
    with pytest.raises(LLMNotConfiguredError, match="EVERGRAPH_LLM_BASE_URL"):
        pinned.ask(f"Where was {person} born?")
    answer = pinned.ask("Who is Zorblax Quintaine?")
    assert answer.abstained and answer.citations == [] and answer.facts == [] and answer.llm_model is None
    assert answer.answer and answer.answer == answer.guide.message and answer.version == "2"


def test_a_home_without_a_champion(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="evergraph run"):
        KnowledgeClient.local(home=tmp_path / "empty")


def test_a_remote_client_to_a_closed_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with KnowledgeClient.remote(f"http://127.0.0.1:{port}", timeout=5) as client:
        with pytest.raises(KnowledgeClientError, match="evergraph serve") as caught:
            client.version()
    assert caught.value.status is None and str(port) in str(caught.value)
