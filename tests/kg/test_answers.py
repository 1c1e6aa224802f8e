"""The kind of answer a question asks for (a ranking signal of the guide)."""

import pytest

from evergraph.kg.knowledge.answers import expected_kind


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Who directed Inception?", "person"),
        ("whose wife was born in Paris", "person"),
        ("Where did Barack Obama go to college?", "place"),
        ("In which country was Jeremy Irons born?", "place"),
        ("what city is the louvre in", "place"),
        ("When did the Berlin Wall fall?", "date"),
        ("What year was Titanic released?", "date"),
        ("What currency does Japan use?", None),
        ("What is the profession of Jeremy Irons?", None),
    ],
)
def test_expected_kind(question: str, kind: str | None) -> None:
    assert expected_kind(question) == kind


def test_entity_kinds_come_from_the_relations_an_entity_heads() -> None:
    import types

    import torch

    from evergraph.kg.engine.vocab import Vocabulary
    from evergraph.kg.knowledge.answers import EntityKinds

    labels = ["/m/person", "/m/city", "/m/country", "/m/olympics", "/m/film"]
    relations = ["/people/person/place_of_birth", "/location/location/contains", "/film/film/country"]
    facts = torch.tensor([[0, 0, 1, 0], [2, 1, 1, 0], [4, 2, 2, 0]])  # born in the city; country contains it
    bundle = types.SimpleNamespace(
        facts=types.SimpleNamespace(facts=facts),
        entities=Vocabulary(labels),
        relations=Vocabulary(relations),
        entity_names={"/m/olympics": "2008 Summer Olympics", "/m/film": "Heat"},
    )
    kinds = EntityKinds(bundle)  # type: ignore[arg-type]
    everyone = torch.arange(5)
    assert kinds.matches(everyone, "person").tolist() == [True, False, False, False, False]
    assert kinds.matches(everyone, "place").tolist() == [False, True, True, False, False]  # contained, or heads
    assert kinds.matches(everyone, "date").tolist() == [False, False, False, True, False]  # a year in the name
    assert kinds.described(everyone).tolist() == [True, True, True, True, False]  # a film: no kind known
