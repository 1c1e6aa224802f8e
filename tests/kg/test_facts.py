"""FactTable: facts about an entity, known answers of a query, membership."""

import pytest
import torch

from evergraph.kg.errors import FactTableError
from evergraph.kg.store.facts import FactTable

FACTS = torch.tensor([[0, 0, 1, 0], [0, 0, 2, 1], [2, 1, 0, 1], [3, 0, 1, 2]])


def table() -> FactTable:
    return FactTable(FACTS, num_entities=5, num_relations=2)


def test_about_sees_each_fact_from_both_ends() -> None:
    facts = table()
    about0 = {(f.fact, f.relation, f.other) for f in facts.about(0)}
    assert about0 == {(0, 0, 1), (1, 0, 2), (2, 3, 2)}  # (2, r1, 0) seen from 0 through the inverse of r1
    assert {f.fact for f in facts.about(1)} == {0, 3}
    assert facts.about(4) == [] and facts.degree(4) == 0 and facts.degree(0) == 3


def test_answers_in_both_directions() -> None:
    facts = table()
    assert facts.answers(0, 0).tolist() == [1, 2]  # (0, r0, ?)
    assert facts.answers(1, 1).tolist() == [0, 3]  # (?, r0, 1): heads
    assert facts.answers(1, 0).tolist() == []


def test_contains_and_snapshot() -> None:
    facts = table()
    assert facts.contains(0, 0, 2) and not facts.contains(2, 0, 0) and not facts.contains(9, 0, 0)
    assert facts.snapshot_of(3) == 2 and len(facts) == 4


@pytest.mark.parametrize(
    "rows",
    [torch.tensor([[0, 0, 5, 0]]), torch.tensor([[0, 2, 1, 0]]), torch.tensor([[0, 0, 1, -1]]), torch.zeros(2, 3)],
)
def test_bad_facts_are_refused(rows: torch.Tensor) -> None:
    with pytest.raises(FactTableError):
        FactTable(rows, num_entities=5, num_relations=2)


def test_empty_table() -> None:
    facts = FactTable(torch.empty(0, 4, dtype=torch.long), num_entities=3, num_relations=1)
    assert len(facts) == 0 and facts.about(2) == [] and facts.answers(0, 1).numel() == 0


def test_has_answers_is_vectorised_answers() -> None:
    facts = table()
    entities = torch.arange(5).repeat_interleave(4)
    relations = torch.arange(4).repeat(5)
    expected = [len(facts.answers(int(e), int(r))) > 0 for e, r in zip(entities, relations, strict=True)]
    assert facts.has_answers(entities, relations).tolist() == expected
    assert facts.has_answers(entities.reshape(5, 4), relations.reshape(5, 4)).shape == (5, 4)


def test_contains_many_and_answer_counts_are_vectorised_contains_and_answers() -> None:
    facts = table()
    grid = torch.cartesian_prod(torch.arange(-1, 6), torch.arange(-1, 3), torch.arange(-1, 6))
    expected = [facts.contains(h, r, t) for h, r, t in grid.tolist()]
    assert facts.contains_many(grid).tolist() == expected
    assert sum(expected) == len(FACTS)
    entities = torch.arange(5).repeat_interleave(4)
    relations = torch.arange(4).repeat(5)
    counts = [len(facts.answers(int(e), int(r))) for e, r in zip(entities, relations, strict=True)]
    assert facts.answer_counts(entities, relations).tolist() == counts


def test_answers_many_is_vectorised_answers() -> None:
    facts = table()
    entities = torch.arange(5).repeat_interleave(4).flip(0)
    relations = torch.arange(4).repeat(5)
    query, answer = facts.answers_many(entities, relations)
    expected = [
        (i, a)
        for i, (e, r) in enumerate(zip(entities, relations, strict=True))
        for a in facts.answers(int(e), int(r)).tolist()
    ]
    assert list(zip(query.tolist(), answer.tolist(), strict=True)) == expected
    assert len(expected) == 2 * len(FACTS)
    empty = FactTable(torch.empty(0, 4, dtype=torch.long), num_entities=3, num_relations=1)
    assert [len(x) for x in empty.answers_many(torch.tensor([0, 2]), torch.tensor([1, 0]))] == [0, 0]
