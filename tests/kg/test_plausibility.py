"""The plausibility filter: fitted on validation facts and hard negatives, it flags facts that do not fit."""

from pathlib import Path

import pytest
import torch

from evergraph.kg.engine.ingest import load_shared
from evergraph.kg.errors import PlausibilityError
from evergraph.kg.knowledge.plausibility import (
    PlausibilityModel,
    bundle_valid_facts,
    check_facts,
    check_labelled,
    fit_for_bundle,
    hard_negatives,
    load_or_fit,
    plausibility_path,
    read_triples_file,
)
from evergraph.kg.store.bundle import Bundle
from evergraph.kg.store.facts import FactTable


@pytest.fixture(scope="module")
def bundle(champion_bundle: Path) -> Bundle:
    return Bundle.load(champion_bundle)


@pytest.fixture(scope="module")
def plausibility(bundle: Bundle, example_data: Path) -> PlausibilityModel:
    return fit_for_bundle(bundle, example_data)


def _label(bundle: Bundle, i: int) -> str:
    return bundle.entities.label(i)


def test_hard_negatives_are_type_consistent_and_false(bundle: Bundle, example_data: Path) -> None:
    valid = bundle_valid_facts(bundle, example_data)
    assert len(valid) > 50
    true = {tuple(x) for x in bundle.facts.facts[:, :3].tolist()} | {tuple(x) for x in valid.tolist()}
    negatives = hard_negatives(
        valid, facts=bundle.facts, true=torch.tensor(sorted(true)), generator=torch.Generator().manual_seed(0)
    )
    assert len(negatives) > 0.8 * len(valid)
    known = bundle.facts.facts
    for h, r, t in negatives.tolist():
        assert (h, r, t) not in true
        assert bool(((known[:, 1] == r) & (known[:, 2] == t)).any())  # t was seen in r's tail position


def test_fit_is_per_relation_and_round_trips(plausibility: PlausibilityModel, bundle: Bundle, tmp_path: Path) -> None:
    assert plausibility.version == bundle.version and plausibility.thresholds
    assert 0 < plausibility.type_ratio < 1 and plausibility.slope > 0
    functional = {bundle.relations.label(r) for r in plausibility.functional}
    assert "born_in" in functional and "friend_of" not in functional
    plausibility.save(tmp_path / "p.json")
    assert PlausibilityModel.load(tmp_path / "p.json") == plausibility


def test_true_new_facts_pass_and_corrupted_ones_are_suspects(
    bundle: Bundle, plausibility: PlausibilityModel, example_data: Path
) -> None:
    kg = load_shared(example_data, upto=2)

    def labels(rows: torch.Tensor) -> list[tuple[str, str, str]]:
        return [(kg.entities.label(h), kg.relations.label(r), kg.entities.label(t)) for h, r, t in rows.tolist()]

    # true facts the champion never learned: the test facts of its snapshots and the new facts of the next one
    unseen = torch.cat([kg.snapshots[0].test, kg.snapshots[1].test, kg.snapshots[2].train])
    new = [x for x in labels(unseen) if x[0] in bundle.entities and x[2] in bundle.entities]
    new = [x for x in new if x[1] in bundle.relations]
    assert len(new) >= 20
    true_rows = check_labelled(bundle, plausibility, new)
    ids = torch.tensor([(bundle.entities.id(h), bundle.relations.id(r), bundle.entities.id(t)) for h, r, t in new])
    everything = {x for s in kg.snapshots for x in labels(s.facts)}
    true = {
        (bundle.entities.id(h), bundle.relations.id(r), bundle.entities.id(t))
        for h, r, t in everything
        if h in bundle.entities and t in bundle.entities and r in bundle.relations
    }
    negatives = hard_negatives(
        ids, facts=bundle.facts, true=torch.tensor(sorted(true)), generator=torch.Generator().manual_seed(1)
    )
    wrong = [(_label(bundle, h), bundle.relations.label(r), _label(bundle, t)) for h, r, t in negatives.tolist()]
    false_rows = check_labelled(bundle, plausibility, wrong)
    held_true = sum(r["suspect"] for r in true_rows) / len(true_rows)
    held_false = sum(r["suspect"] for r in false_rows) / len(false_rows)
    assert held_false > held_true + 0.2, (held_true, held_false)
    for row in true_rows + false_rows:
        assert 0 <= row["probability"] <= 1 and row["scored"] == "full"
        assert (row["reason"] is None) == (not row["suspect"])


def test_reasons_name_types_and_functional_contradictions(bundle: Bundle, plausibility: PlausibilityModel) -> None:
    born = bundle.relations.id("born_in")
    person, city = next((h, t) for h, r, t in bundle.facts.facts[:, :3].tolist() if r == born)
    other_city = next(t for h, r, t in bundle.facts.facts[:, :3].tolist() if r == born and t != city)
    located = "located_in"
    facts = [
        (_label(bundle, city), located, _label(bundle, person)),  # a city located in a person
        (_label(bundle, person), "born_in", _label(bundle, other_city)),  # a second place of birth
        (_label(bundle, person), "discovered", _label(bundle, city)),  # a relation new to the champion
        ("person/nobody_new", "born_in", _label(bundle, city)),  # a new entity
    ]
    rows = check_labelled(bundle, plausibility, facts)
    assert [r["head"] for r in rows] == [f[0] for f in facts]  # input order
    assert rows[0]["suspect"] and "has never been the tail of located in" in rows[0]["reason"]
    assert rows[0]["probability"] < 0.05
    assert "contradicts functional relation born in" in rows[1]["reason"] and rows[1]["suspect"]
    assert rows[2]["probability"] is None and rows[2]["scored"] == "none" and "discovered" in rows[2]["reason"]
    assert rows[3]["scored"] == "partial" and rows[3]["probability"] is not None


def test_checking_many_facts_at_once_gives_each_fact_its_own_verdict(
    bundle: Bundle, plausibility: PlausibilityModel
) -> None:
    """The signals are computed for a whole batch (in blocks); each verdict must be the one the fact gets alone."""
    generator = torch.Generator().manual_seed(0)
    known = bundle.facts.facts[:, :3]
    corrupted = known[torch.randperm(len(known), generator=generator)[:5000]].clone()
    corrupted[:, 2] = torch.randint(bundle.facts.num_entities, (len(corrupted),), generator=generator)
    rows = [*map(tuple, corrupted.tolist()), *map(tuple, known[:20].tolist()), (-1, 0, 1), (0, -1, 1), (0, 0, -1)]
    together = check_facts(plausibility, model=bundle.model, facts=bundle.facts, triples=rows)
    alone = [
        check_facts(plausibility, model=bundle.model, facts=bundle.facts, triples=[row])[0]
        for row in rows[::50] + rows[-23:]
    ]
    assert [together[i] for i in [*range(0, len(rows), 50), *range(len(rows) - 23, len(rows))]] == alone
    assert {v.scored for v in together} == {"full", "known", "partial", "none"}
    assert any(v.contradicts is not None for v in together) and any(v.type_misfit for v in together)


def test_load_or_fit_keeps_the_filter_in_the_home(bundle: Bundle, example_data: Path, tmp_path: Path) -> None:
    with pytest.raises(PlausibilityError, match="--data"):
        load_or_fit(bundle, home_root=tmp_path, data=None)
    fitted = load_or_fit(bundle, home_root=tmp_path, data=example_data)
    assert plausibility_path(tmp_path, bundle.version).is_file()
    assert load_or_fit(bundle, home_root=tmp_path, data=None) == fitted


def test_triples_file_errors_name_file_and_line(tmp_path: Path) -> None:
    good = tmp_path / "facts.txt"
    good.write_text("a\tr\tb\n\nc\tr\td\n", encoding="utf-8")
    assert read_triples_file(good) == [("a", "r", "b"), ("c", "r", "d")]
    bad = tmp_path / "bad.txt"
    bad.write_text("a\tr\tb\na\tr\n", encoding="utf-8")
    with pytest.raises(PlausibilityError, match=r"bad.txt:2: expected head<TAB>relation<TAB>tail"):
        read_triples_file(bad)
    with pytest.raises(PlausibilityError, match="does not exist"):
        read_triples_file(tmp_path / "missing.txt")


def test_hard_negatives_draw_from_the_relation_tails_and_skip_what_cannot_be_corrupted() -> None:
    # relation 0 has tails {1, 2, 3}; relation 1 only tail 4 (no other tail to swap in)
    facts = FactTable(
        torch.tensor([[0, 0, 1, 0], [5, 0, 2, 0], [6, 0, 3, 0], [0, 1, 4, 0], [5, 1, 4, 0]]),
        num_entities=7,
        num_relations=2,
    )
    true = facts.facts[:, :3]
    triples = torch.tensor([[0, 0, 1], [0, 1, 4], [5, 0, 2]])
    negatives = hard_negatives(triples, facts=facts, true=true, generator=torch.Generator().manual_seed(0))
    assert negatives[:, :2].tolist() == [[0, 0], [5, 0]]  # relation 1's fact dropped; order kept
    assert negatives[0, 2].item() in (2, 3) and negatives[1, 2].item() in (1, 3)
    # every other tail of head 0 is true: nothing is left to draw for it
    crowded = torch.cat([true, torch.tensor([[0, 0, 2], [0, 0, 3]])])
    only = hard_negatives(triples[:1], facts=facts, true=crowded, generator=torch.Generator().manual_seed(0))
    assert len(only) == 0
    assert len(hard_negatives(triples[:0], facts=facts, true=true, generator=torch.Generator())) == 0
