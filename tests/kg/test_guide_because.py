"""The guide cites the known facts that support an inferred one: "because [2] and [5]"."""

from pathlib import Path

import pytest

from evergraph.kg.knowledge.guide import Guide, GuideConfig
from evergraph.kg.store.bundle import Bundle


@pytest.fixture(scope="module")
def bundle(champion_bundle: Path) -> Bundle:
    return Bundle.load(champion_bundle)


def test_inferred_facts_cite_the_known_facts_of_their_best_path(bundle: Bundle) -> None:
    guide = Guide(bundle, config=GuideConfig(min_confidence=0.0, max_inferred=8))
    cities = [bundle.entity_names.get(label, label) for label in bundle.entities if label.startswith("city/")][:6]
    people = [bundle.entity_names.get(label, label) for label in bundle.entities if label.startswith("person/")][:6]
    questions = [f"Which country is {c} located in?" for c in cities]
    questions += [f"Which country is {p} a citizen of?" for p in people]
    explained = 0
    for question in questions:
        result = guide.guide(question)
        by_number = {fact.citation: fact for fact in result.facts}
        assert sorted(by_number) == list(range(1, len(result.facts) + 1))
        assert result.context_tokens <= guide.config.max_context_tokens
        for fact in result.facts:
            if not fact.because:
                continue
            explained += 1
            assert fact.kind == "inferred"
            line = next(x for x in result.context.splitlines() if x.startswith(f"[{fact.citation}] "))
            assert "because [" in line and all(f"[{n}]" in line.split("because", 1)[1] for n in fact.because)
            node = fact.head.id
            for number in fact.because:  # the cited facts are known and chain from the head to the tail
                cited = by_number[number]
                assert cited.kind == "known"
                assert bundle.facts.contains(cited.head.id, cited.relation.id, cited.tail.id)
                assert node in (cited.head.id, cited.tail.id)
                node = cited.tail.id if node == cited.head.id else cited.head.id
            assert node == fact.tail.id
    assert explained > 0
