"""The guide: linked entities, relevant known facts, calibrated inferred facts, a cited context, abstention."""

import re
from pathlib import Path

import pytest

from evergraph.kg.errors import QuestionTooLongError
from evergraph.kg.knowledge.guide import Guide, GuideConfig, edit_similarity, estimate_tokens, relation_phrase
from evergraph.kg.store.bundle import Bundle
from tests.conftest import born_person


@pytest.fixture(scope="module")
def bundle(champion_bundle: Path) -> Bundle:
    return Bundle.load(champion_bundle)


@pytest.fixture(scope="module")
def guide(bundle: Bundle) -> Guide:
    return Guide(bundle)


def test_context_cites_known_facts_about_the_entity(guide: Guide, bundle: Bundle) -> None:
    name = born_person(bundle)
    result = guide.guide(f"Where was {name} born?")
    assert not result.abstained and result.entities[0].name == name and result.entities[0].score == 1.0
    assert result.relations[0].label == "born_in"
    assert [f.citation for f in result.facts] == list(range(1, len(result.facts) + 1))
    top = result.facts[0]
    assert top.kind == "known" and top.relation.label == "born_in" and name in (top.head.name, top.tail.name)
    assert top.score == pytest.approx(0.4 + 0.6 * result.relations[0].score, abs=1e-5)  # relevance formula
    assert f"[1] {top.text} (known, snapshot {top.snapshot})" in result.context
    assert f"model version {bundle.version}" in result.context and f"snapshot {bundle.snapshot}" in result.context
    for fact in result.facts:
        assert fact.snapshot is not None and fact.snapshot <= bundle.snapshot
        if fact.kind == "known":
            assert bundle.facts.contains(fact.head.id, fact.relation.id, fact.tail.id)
    system, user = result.prompt
    assert (
        system.role == "system"
        and "[1]" in system.content
        and user.content.endswith(f"Question: Where was {name} born?")
    )
    assert result.context in user.content


def test_inferred_facts_are_marked_with_confidence(bundle: Bundle) -> None:
    guide = Guide(bundle, config=GuideConfig(min_confidence=0.0, max_known=2))
    name = born_person(bundle, born=False)
    result = guide.guide(f"Where was {name} born?")
    inferred = [f for f in result.facts if f.kind == "inferred"]
    assert inferred, result.context
    for fact in inferred:
        assert fact.relation.label == "born_in" and 0 <= fact.confidence <= 1
        assert not bundle.facts.contains(fact.head.id, fact.relation.id, fact.tail.id)
        assert f"[{fact.citation}] {fact.text} (inferred, confidence {fact.confidence:.2f})" in result.context
    kinds = [f.kind for f in result.facts]
    assert kinds == sorted(kinds, key=lambda k: k != "known")  # known facts first


def test_min_confidence_filters_inferred_facts(bundle: Bundle) -> None:
    strict = Guide(bundle, config=GuideConfig(min_confidence=1.0, max_known=0))
    result = strict.guide(f"Where was {born_person(bundle, born=False)} born?")
    assert result.abstained and "bars" in result.reason and result.prompt == []


def test_abstains_without_a_linked_entity(guide: Guide) -> None:
    result = guide.guide("Who is Zorblax Quintaine?")
    assert (
        result.abstained and result.reason.startswith("no entity") and result.message == GuideConfig().abstain_message
    )
    assert result.facts == [] and result.prompt == [] and result.context == ""


def test_custom_abstain_message(bundle: Bundle) -> None:
    guide = Guide(bundle, config=GuideConfig(abstain_message="Nothing known."))
    assert guide.guide("What is the airspeed of an unladen swallow?").message == "Nothing known."


def test_token_budget_is_respected(bundle: Bundle) -> None:
    guide = Guide(bundle, config=GuideConfig(max_known=50, max_context_tokens=128))
    result = guide.guide("Tell me about Paris")
    assert not result.abstained and result.context_tokens <= 128 and result.dropped_facts > 0
    assert result.context_tokens == estimate_tokens(result.context)
    assert len(re.findall(r"^\[\d+\]", result.context, flags=re.M)) == len(result.facts)


def test_two_hops_reach_the_neighbours(bundle: Bundle) -> None:
    name = born_person(bundle)
    one = Guide(bundle, config=GuideConfig(max_known=30)).guide(f"Where was {name} born?")
    two = Guide(bundle, config=GuideConfig(hops=2, max_known=30)).guide(f"Where was {name} born?")
    assert {f.hop for f in one.facts if f.kind == "known"} == {1}
    second = [f for f in two.facts if f.hop == 2]
    assert second and all(name not in (f.head.name, f.tail.name) for f in second)
    assert max(f.score for f in second) <= max(f.score for f in two.facts if f.hop == 1)


def test_diverse_relations_on_a_hub(bundle: Bundle) -> None:
    result = Guide(bundle, config=GuideConfig(max_known=6)).guide("Tell me about France")
    assert len({f.relation.label for f in result.facts if f.kind == "known"}) >= 2


def test_too_long_question(guide: Guide) -> None:
    with pytest.raises(QuestionTooLongError):
        guide.guide("x" * 2001)


@pytest.mark.parametrize(
    ("label", "name", "phrase"),
    [
        ("/people/person/place_of_birth", "people person place of birth", "place of birth"),
        ("/film/actor/film./film/performance/film", None, "film"),
        ("born_in", "born in", "born in"),
        ("r7", "was born in", "was born in"),
    ],
)
def test_relation_phrase(label: str, name: str | None, phrase: str) -> None:
    assert relation_phrase(label, name) == phrase


def test_a_name_covering_part_of_a_mention_does_not_anchor(guide: Guide) -> None:
    partial = guide.guide("Who founded Paris Saint Germain Football Club?")
    assert partial.abstained and partial.entities[0].name == "Paris" and partial.entities[0].score < 0.5
    assert not guide.guide("Who was born in Paris?").abstained
    assert not guide.guide("Paris is located in which country?").abstained  # the first word is a name too


def test_a_misspelt_name_still_anchors_by_edit_similarity(guide: Guide, bundle: Bundle) -> None:
    name = born_person(bundle)
    first, last = name.split()[0], name.split()[-1]
    typo = f"{first} {last[:2]}{last[3:]}"  # one letter dropped
    result = guide.guide(f"Where was {typo} born?")
    assert not result.abstained and result.entities[0].name == name and result.entities[0].match == "text"
    assert result.entities[0].score == pytest.approx(edit_similarity(typo, name))


def test_lower_case_words_do_not_make_a_proper_name(guide: Guide, bundle: Bundle) -> None:
    """In a question with informative case, a multi-word proper name matched by lower-case words counts half
    ("the artist" is not the film "The Artist")."""
    company = next(name for label, name in bundle.entity_names.items() if label.startswith("company/"))
    assert len(company.split()) >= 2
    lower = guide.guide(f"Which {company.lower()} is based in Paris?")
    assert [e.name for e in lower.entities] == ["Paris"]  # the company (0.5) is below min_entity_score
    proper = guide.guide(f"Which city is {company} based in?")
    assert proper.entities[0].name == company and proper.entities[0].score == 1.0


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("Jeremy Irons", "jeremy irons", 1.0),
        ("Jeremy Irns", "Jeremy Irons", 1 - 1 / 12),
        ("Knight", "T. R. Knight", 0.6),
    ],
)
def test_edit_similarity(a: str, b: str, expected: float) -> None:
    assert edit_similarity(a, b) == pytest.approx(expected)
