"""``explain`` through Knowledge, the in-process and HTTP clients and ``GET /explain``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from evergraph.kg.knowledge.knowledge import Knowledge
from evergraph.kg.service.client import KnowledgeClient
from evergraph.kg.service.server import create_app
from tests.servers import running


@pytest.fixture(scope="module")
def local(champion_bundle: Path) -> Knowledge:
    return Knowledge.load(champion_bundle)


@pytest.fixture(scope="module")
def url(local: Knowledge) -> Iterator[str]:
    with running(create_app(lambda: local)) as base:
        yield base


@pytest.fixture(scope="module")
def citizenship(local: Knowledge) -> tuple[str, str, str]:
    """A known citizen_of fact with a supporting path, as labels."""
    bundle = local.bundle
    citizen = bundle.relations.id("citizen_of")
    for h, _, t in bundle.facts.facts[bundle.facts.facts[:, 1] == citizen][:, :3].tolist():
        result = local.explain(bundle.entities.label(h), "citizen_of", bundle.entities.label(t))
        if result.paths:
            return bundle.entities.label(h), "citizen_of", bundle.entities.label(t)
    raise AssertionError("no explained citizenship")


def test_knowledge_explain_cites_known_facts(local: Knowledge, citizenship: tuple[str, str, str]) -> None:
    result = local.explain(*citizenship)
    assert result.found and result.known and result.version == local.version
    assert result.head is not None and result.head.label == citizenship[0]
    assert result.confidence == result.paths[0].rule.confidence > 0
    for path in result.paths:
        assert "=> citizen of(x, y)" in path.rule.text and len(path.facts) == len(path.rule.body)
        for fact in path.facts:
            assert fact.kind == "known"
            assert local.bundle.facts.contains(fact.head.id, fact.relation.id, fact.tail.id)
    for analogy in result.analogies:
        assert analogy.fact.relation.label == "citizen_of" and 0 < analogy.similarity <= 1


def test_unknown_names_are_answers(local: Knowledge) -> None:
    result = local.explain("Zorblax Quintaine", "citizen of", "France")
    assert not result.found and "Zorblax" in (result.message or "") and result.paths == []
    result = local.explain("France", "invented", "France")
    assert not result.found and "invented" in (result.message or "")


def test_remote_explain_equals_local(url: str, champion_bundle: Path, citizenship: tuple[str, str, str]) -> None:
    with KnowledgeClient.remote(url) as remote, KnowledgeClient.local(bundle=champion_bundle, chat=None) as local:
        expected = local.explain(*citizenship)
        assert expected.paths and remote.explain(*citizenship) == expected
    response = httpx.get(f"{url}/explain", params={"head": citizenship[0], "relation": "citizen_of"}, timeout=30)
    assert response.status_code == 422  # the tail is required
