from pathlib import Path

import numpy as np
import pytest

from evergraph.kg.errors import EvergraphError, LinkingError, QuestionTooLongError
from evergraph.kg.knowledge.linking import (
    MAX_QUESTION_CHARS,
    LinkCandidate,
    Linker,
    readable_relation,
    relation_text,
)
from evergraph.kg.knowledge.text import HashingEncoder

ENTITIES = [
    (0, "/m/02_286", "New York City"),
    (1, "/m/059rby", "New York"),
    (2, "/m/016ywr", "Jeremy Irons"),
    (3, "/m/0c94fn", "Gary Rydstrom"),
    (4, "/m/01yjl", "Chicago Cubs"),
    (5, "/m/06rf7", "Schleswig-Holstein"),
    (6, "/m/0ggx5q", "Jeremy Renner"),
    (7, "/m/02vxn", "Film"),
    (8, "/m/0x_no_name", None),
]
RELATIONS = [
    (0, "/people/person/place_of_birth", "people person place of birth"),
    (1, "/film/film/genre", None),
    (2, "/sports/sports_team/location", "sports sports team location"),
    (3, "/people/person/nationality", "people person nationality"),
]


@pytest.fixture(scope="module")
def linker() -> Linker:
    return Linker.build(
        entities=ENTITIES,
        relations=RELATIONS,
        aliases={"/m/02_286": ["Big Apple"], 3: "Rydstrom"},
        relation_aliases={0: ["born in", "birthplace"]},
    )


def ids(candidates: list[LinkCandidate]) -> list[int]:
    return [c.id for c in candidates]


def test_exact_match_has_score_one_and_the_question_span(linker: Linker) -> None:
    question = "Where was Jeremy Irons born?"
    best = linker.link(question).entities[0]
    assert (best.id, best.label, best.name, best.score, best.match) == (2, "/m/016ywr", "Jeremy Irons", 1.0, "exact")
    assert best.span is not None and question[best.span[0] : best.span[1]] == "Jeremy Irons"


def test_the_longest_match_wins_over_a_shorter_overlapping_name(linker: Linker) -> None:
    result = linker.link("I moved to new york city last year", k_entities=5)
    exact = [c for c in result.entities if c.match != "text"]
    assert ids(exact) == [0]  # "New York" overlaps the longer match and is not an exact match
    assert linker.link("I moved to New York.").entities[0].id == 1


def test_aliases_match_and_report_alias(linker: Linker) -> None:
    hit = linker.link("Restaurants in the big apple?").entities[0]
    assert (hit.id, hit.match, hit.score, hit.matched) == (0, "alias", 1.0, "Big Apple")
    assert linker.link("films by Rydstrom").entities[0].match == "alias"


def test_fuzzy_match_finds_a_misspelt_name_via_the_text_index(linker: Linker) -> None:
    question = "Where was Jeremy Irns born?"
    best = linker.link(question).entities[0]
    assert (best.id, best.match) == (2, "text") and 0.5 <= best.score < 1.0
    assert best.span is not None and question[best.span[0] : best.span[1]] == "Jeremy Irns"
    assert 2 in ids(linker.link("where was jeremy irns born").entities)  # no case hints: every n-gram is tried


def test_relations_link_from_aliases_path_segments_and_text(linker: Linker) -> None:
    born = linker.link("Where was Jeremy Irons born in?").relations[0]
    assert (born.id, born.match, born.score, born.matched) == (0, "alias", 1.0, "born in")
    segment = linker.link("What is the nationality of Gary Rydstrom?").relations[0]
    assert (segment.id, segment.match) == (3, "alias")  # the path's last segment, an automatic alias
    genre = linker.link("Which genre is that film?").relations
    assert genre[0].id == 1 and genre[0].name == "film film genre"  # a path without a name reads as words
    fuzzy = linker.link("What was Jeremy Irons' place of brith?").relations[0]
    assert (fuzzy.id, fuzzy.match) == (0, "text") and fuzzy.score >= 0.5
    assert relation_text("/people/person/place_of_birth") == "people person place of birth"


def test_lower_case_relation_words_are_not_entities(linker: Linker) -> None:
    result = linker.link("Which genre is the film?")
    assert 7 not in [c.id for c in result.entities if c.match == "exact"]  # "film" is the relation's word
    assert linker.link("I love Film.").entities[0].id == 7  # capitalised: the entity "Film"


def test_empty_and_unknown_questions_give_an_empty_result(linker: Linker) -> None:
    for question in ["", "   ", "?!", "zzzz qqqq", "it is what it is"]:
        result = linker.link(question)
        assert (result.entities, result.relations, result.question) == ([], [], question)
    assert linker.lookup("Nobody Known") == []


def test_too_long_questions_are_refused_and_bad_arguments_explained(linker: Linker) -> None:
    with pytest.raises(QuestionTooLongError, match=f"more than the {MAX_QUESTION_CHARS} allowed") as caught:
        linker.link("x" * (MAX_QUESTION_CHARS + 1))
    assert isinstance(caught.value, EvergraphError)
    with pytest.raises(LinkingError, match="min_score"):
        linker.link("New York", min_score=2.0)
    with pytest.raises(LinkingError, match="given twice"):
        Linker.build(entities=[(0, "a", "A"), (0, "b", "B")])
    with pytest.raises(LinkingError, match="not the label of any entity"):
        Linker.build(entities={0: "A"}, aliases={"nope": "B"})


def test_k_scores_and_results_are_ranked(linker: Linker) -> None:
    result = linker.link("Jeremy Irons, Gary Rydstrom and the Chicago Cubs in New York", k_entities=2)
    assert len(result.entities) == 2 and all(c.score == 1.0 for c in result.entities)
    assert linker.link("New York", k_entities=0).entities == []
    everything = linker.link("Jeremy Rydstrom from Chicago", k_entities=9, min_score=0.0).entities
    scores = [c.score for c in everything]
    assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
    assert everything[0].to_dict()["span"] is None or isinstance(everything[0].to_dict()["span"], list)


def test_lookup_and_search(linker: Linker) -> None:
    assert ids(linker.lookup("new YORK")) == [1]
    assert [(c.id, c.match) for c in linker.lookup("birthplace", kind="relation")] == [(0, "alias")]
    assert linker.lookup("/m/0x_no_name")[0].name == "/m/0x_no_name"  # no readable name: the label stands in
    assert linker.search("Jeremy Irns", k=1)[0].id == 2


def test_faiss_ranking_equals_brute_force_cosine() -> None:
    names = {i: name for i, name in enumerate(["Alpha Centauri", "Alpine skiing", "Al Pacino", "Paris", "Parisa"])}
    encoder = HashingEncoder(dim=256)
    linker = Linker.build(entities=names, encoder=encoder)
    vectors = encoder.encode(list(names.values()))
    for query in ["alpha", "Al Paccino", "pariss", "skiing in the alps"]:
        found = linker.search(query, k=5, min_score=0.0)
        cosines = np.clip(vectors @ encoder.encode([query])[0], 0.0, 1.0)
        assert [c.score for c in found] == pytest.approx(sorted(cosines, reverse=True)[: len(found)], abs=1e-5)
        for candidate in found:
            assert candidate.score == pytest.approx(cosines[candidate.id], abs=1e-5)


def test_from_bundle_links_readable_names(example_data: Path, tmp_path: Path) -> None:
    from evergraph.kg.engine.config import ModelConfig
    from evergraph.kg.engine.lifelong import LifelongRun
    from evergraph.kg.store.bundle import Bundle
    from evergraph.kg.store.bundle_writer import write_bundle
    from tests.conftest import fast_config

    config = fast_config("lkge", max_epochs=1, eval_every=1).model_copy(update={"model": ModelConfig(dim=8)})
    LifelongRun(data=example_data, out=tmp_path / "run", config=config, show_progress=False).run(upto=0)
    bundle = Bundle.load(write_bundle(run_dir=tmp_path / "run", snapshot=0, dest=tmp_path / "b", version="1"))
    linker = Linker.from_bundle(bundle)
    assert (linker.num_entities, linker.num_relations) == (len(bundle.entities), len(bundle.relations))
    label, name = next(iter(bundle.entity_names.items()))
    best = linker.link(f"Tell me about {name}.").entities[0]
    assert (best.label, best.name, best.match) == (label, name, "exact")
    assert best.id == bundle.entities.id(label)


def test_relations_may_use_their_own_encoder() -> None:
    linker = Linker.build(entities={0: "Paris"}, relations=RELATIONS, relation_encoder=HashingEncoder(dim=64))
    assert (linker.encoder.dim, linker.relation_encoder.dim) == (512, 64)
    assert linker.link("What is the place of brith of someone in Paris?").relations[0].id == 0
    assert "relation_encoder=HashingEncoder(dim=64" in repr(linker)


def test_short_names_match_only_verbatim_and_longer_mentions_win() -> None:
    names = {0: "C", 1: "C++", 2: "Colorado", 3: "Colorado Rockies", 4: "Chicago Cubs"}
    linker = Linker.build(entities=names)
    assert [c.id for c in linker.link("Is C++ older than C?").entities if c.match == "exact"] == [1, 0]
    assert all(c.id not in (0, 1) for c in linker.link("Did Chicago Cubs F.C. win?").entities)
    ranked = linker.link("Which films did Colorado Rocies appear in?").entities
    assert [(c.id, c.match) for c in ranked[:2]] == [(3, "text"), (2, "exact")]  # the whole capitalised run wins


@pytest.mark.parametrize(
    ("question", "mentions"),
    [
        ("Where was Jeremy Irons born?", ["Jeremy Irons"]),
        ("Tell me about House of Wittelsbach", ["House of Wittelsbach"]),
        ("Jeremy Irons was born where?", ["Irons"]),  # the first word's capital says nothing
        ("where was jeremy irons born?", []),  # no case information
    ],
)
def test_mentions_are_capitalised_runs(linker: Linker, question: str, mentions: list[str]) -> None:
    assert [question[b:e] for b, e in linker.mentions(question)] == mentions


def test_similarities_agree_with_search(linker: Linker) -> None:
    text = "place of birth"
    scores = linker.similarities(text, kind="relation")
    assert scores.shape == (linker.num_relations,) and ((scores >= 0) & (scores <= 1)).all()
    for hit in linker.search(text, kind="relation", k=linker.num_relations, min_score=0.0):
        assert scores[hit.id] == pytest.approx(hit.score, abs=1e-5)


def test_partial_names_acronyms_and_lower_case() -> None:
    names = {
        0: "Los Angeles Lakers",
        1: "Barack Obama",
        2: "Michelle Obama",
        3: "Los Angeles",
        4: "Central Intelligence Agency (CIA)",
    }
    linker = Linker.build(entities=names, popularity=[50, 100, 10, 80, 5])
    lakers = linker.link("Where do the Lakers play?").entities[0]
    assert (lakers.id, lakers.match, lakers.span) == (0, "partial", (13, 19)) and lakers.score == pytest.approx(0.9)
    obama = linker.link("what did obama study").entities[0]  # shared: the better known holder, scored by share
    assert (obama.id, obama.match) == (1, "partial")
    assert obama.score == pytest.approx(0.9 * 0.95 * (101 / 112) ** 0.5)  # lower case: 0.95 as strong
    assert linker.link("where was barack obama born").entities[0].match == "exact"
    assert [c.id for c in linker.link("Where is Los Angeles?").entities][:1] == [3]  # a whole name stays exact
    cia = linker.link("Who runs the CIA?").entities[0]
    assert (cia.id, cia.match) == (4, "alias")
    with pytest.raises(LinkingError, match="popularity"):
        Linker.build(entities=names, popularity=[1.0])


@pytest.mark.parametrize(
    ("label", "text"),
    [
        ("/people/person/place_of_birth", "person place of birth"),
        (
            "/education/educational_institution/students_graduates./education/education/student",
            "educational institution students graduates education student",
        ),
        ("/people/person/spouse_s./people/marriage/spouse", "person spouse marriage"),
        ("/user/jg/default_domain/olympic_games/sports", "olympic games sports"),
        ("born_in", "born in"),
    ],
)
def test_readable_relation(label: str, text: str) -> None:
    assert readable_relation(label) == text


def test_lower_case_questions_take_one_lone_partial_name() -> None:
    names = {0: "Barbra Streisand", 1: "Rachel Getting Married", 2: "Los Angeles Lakers"}
    linker = Linker.build(entities=names, popularity=[120, 40, 60])
    found = [(c.id, c.match) for c in linker.link("who is streisand married to").entities if c.match == "partial"]
    assert found == [(0, "partial")]  # "married" is a common word here, not the film
    both = linker.link("Is Streisand in Rachel Getting Married?").entities  # case says which words are names
    assert {c.id for c in both if c.match in ("exact", "partial")} == {0, 1}


def test_hashed_names_are_searched_sparsely_with_the_flat_index_scores() -> None:
    names = [(i, f"/m/{i}", name) for i, name in enumerate(["Jeremy Irons", "Jeremy Renner", "Gary Rydstrom"] * 3)]
    sparse = Linker.build(entities=names, relations=RELATIONS)
    flat = Linker.build(entities=names, relations=RELATIONS)
    flat._entities._postings = None  # the FAISS flat scan
    assert sparse._entities._postings is not None
    for text in ["Jeremy Irns", "gary rydstrm", "Irons", "nothing alike at all"]:
        got, want = sparse.search(text, k=5, min_score=0.2), flat.search(text, k=5, min_score=0.2)
        assert [(c.id, round(c.score, 5)) for c in got] == [(c.id, round(c.score, 5)) for c in want]
    assert sparse.search("Jeremy Irns", k=2)[0].name == "Jeremy Irons"
