"""Inferred facts through the FAISS index equal brute-force filtered top-k and never repeat a known fact."""

from pathlib import Path

import pytest
import torch

from evergraph.kg.knowledge.inference import infer
from evergraph.kg.store.bundle import Bundle
from evergraph.kg.store.calibration import filtered_top_k


@pytest.fixture(scope="module")
def bundle(champion_bundle: Path) -> Bundle:
    return Bundle.load(champion_bundle)


def queries(bundle: Bundle, count: int = 40) -> tuple[list[int], list[int]]:
    generator = torch.Generator().manual_seed(0)
    entities = torch.randint(bundle.model.num_entities, (count,), generator=generator).tolist()
    relations = torch.randint(2 * bundle.model.num_relations, (count,), generator=generator).tolist()
    busiest = max(range(bundle.model.num_entities), key=bundle.facts.degree)  # many known answers to skip
    relation = max(range(2 * bundle.model.num_relations), key=lambda r: len(bundle.facts.answers(busiest, r)))
    return entities + [busiest], relations + [relation]


def test_faiss_inferred_equals_brute_force(bundle: Bundle) -> None:
    entities, relations = queries(bundle)
    found = infer(bundle, entities, relations, k=10)
    scores, ids = filtered_top_k(bundle.model, bundle.facts, torch.tensor(entities), torch.tensor(relations), k=10)
    for i, row in enumerate(found):
        assert [item.answer for item in row] == ids[i][ids[i] >= 0].tolist()
        assert torch.allclose(torch.tensor([item.score for item in row]), scores[i][: len(row)], atol=1e-4)


def test_inferred_never_repeat_known_facts_or_the_entity(bundle: Bundle) -> None:
    entities, relations = queries(bundle)
    for row in infer(bundle, entities, relations, k=10):
        for item in row:
            assert not bundle.facts.contains(*item.triple)
            assert item.answer != item.entity and 0 <= item.confidence <= 1


def test_triple_orientation(bundle: Bundle) -> None:
    (tail,), (head,) = infer(bundle, [3], [0], k=1), infer(bundle, [3], [1], k=1)
    assert tail[0].triple == (3, 0, tail[0].answer)
    assert head[0].triple == (head[0].answer, 0, 3)


def test_bad_k(bundle: Bundle) -> None:
    with pytest.raises(ValueError):
        infer(bundle, [0], [0], k=0)
    assert infer(bundle, [], [], k=3) == []
