"""Entity types from the known facts: roles, a relation's domain and range, and the guide's type guard."""

from pathlib import Path

import pytest
import torch

from evergraph.kg.knowledge.guide import Guide, GuideConfig
from evergraph.kg.knowledge.inference import infer
from evergraph.kg.knowledge.types import RoleTypes, role_types
from evergraph.kg.store.bundle import Bundle

# 0 person, 1 person, 2 city, 3 city, 4 country, 5 new city (only located_in), 6 isolated
BORN, LOCATED = 0, 1
FACTS = torch.tensor([[0, BORN, 2], [1, BORN, 3], [2, LOCATED, 4], [3, LOCATED, 4], [5, LOCATED, 4]])


def test_roles_and_fit_on_a_small_graph() -> None:
    types = RoleTypes(FACTS, num_entities=7, num_relations=2)
    assert types.roles[2].tolist() == [False, True, True, False]  # tail of born_in, head of located_in
    tail_of_born = torch.tensor(2 * BORN)
    # seen answering: 1; a city nobody was born in yet plays the range's typical role (head of located_in): 1
    assert types.fit(torch.tensor([3, 5]), tail_of_born).tolist() == [1.0, 1.0]
    # a person, a country and an entity without facts fit nothing in born_in's tail
    assert types.fit(torch.tensor([0, 4, 6, -1]), tail_of_born).tolist() == [0.0, 0.0, 0.0, 0.0]
    assert types.fits_triple(1, BORN, 5) and not types.fits_triple(2, BORN, 4) and not types.fits_triple(4, BORN, 2)
    # the inverse direction: heads of born_in are persons
    assert types.fits(torch.tensor([1, 2]), torch.tensor(2 * BORN + 1)).tolist() == [True, False]
    assert types.seen_in_position(torch.tensor([3, 5]), tail_of_born).tolist() == [True, False]


def test_empty_graph_fits_nothing() -> None:
    types = RoleTypes(torch.zeros(0, 3, dtype=torch.long), num_entities=3, num_relations=1)
    assert types.fit(torch.tensor([0, 1]), torch.tensor(0)).tolist() == [0.0, 0.0]


@pytest.fixture(scope="module")
def bundle(champion_bundle: Path) -> Bundle:
    return Bundle.load(champion_bundle)


def _kind(bundle: Bundle, entity: int) -> str:
    return bundle.entities.label(entity).split("/")[0]


def _kinds_in_position(bundle: Bundle) -> dict[tuple[int, int], set[str]]:
    """Ground truth from the generator's id prefixes: kinds seen as head (0) / tail (1) of each relation."""
    seen: dict[tuple[int, int], set[str]] = {}
    for h, r, t in bundle.facts.facts[:, :3].tolist():
        seen.setdefault((r, 0), set()).add(_kind(bundle, h))
        seen.setdefault((r, 1), set()).add(_kind(bundle, t))
    return seen


def test_role_types_are_cached_per_fact_table(bundle: Bundle) -> None:
    assert role_types(bundle.facts) is role_types(bundle.facts)


def test_typed_inference_offers_only_answers_of_a_kind_seen_in_that_position(bundle: Bundle) -> None:
    seen = _kinds_in_position(bundle)
    located = bundle.relations.id("located_in")
    cities = [i for i in range(bundle.model.num_entities) if _kind(bundle, i) == "city"][:12]
    untyped = infer(bundle, cities, [2 * located] * len(cities), k=10)
    typed = infer(bundle, cities, [2 * located] * len(cities), k=10, typed=True)
    wrong_untyped = sum(_kind(bundle, x.answer) not in seen[(located, 1)] for row in untyped for x in row)
    assert wrong_untyped > 0  # without the guard, cities and people are offered as what a city is located in
    for row in typed:
        assert row, "typed inference still offers answers"
        for item in row:
            assert _kind(bundle, item.answer) == "country"
            assert not bundle.facts.contains(*item.triple)


@pytest.mark.parametrize(
    "question",
    [
        "Which country is Lyon located in?",
        "Where is Nantes located?",
        "Who lives in Paris?",
        "Which company does {person} work for?",
        "Where was {person} born?",
    ],
)
def test_guide_never_offers_an_inferred_fact_of_the_wrong_type(bundle: Bundle, question: str) -> None:
    from tests.conftest import born_person

    guide = Guide(bundle, config=GuideConfig(min_confidence=0.0, max_inferred=20))
    result = guide.guide(question.format(person=born_person(bundle, born=False)))
    seen = _kinds_in_position(bundle)
    for fact in result.facts:
        if fact.kind != "inferred":
            continue
        assert _kind(bundle, fact.head.id) in seen[(fact.relation.id, 0)], fact.text
        assert _kind(bundle, fact.tail.id) in seen[(fact.relation.id, 1)], fact.text
