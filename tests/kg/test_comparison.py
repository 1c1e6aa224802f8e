"""The gate's new-test-set comparison: same queries, candidates and filter for both versions."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from evergraph.kg.engine.comparison import compare_on_earlier_test_sets, compare_on_new_test_set
from evergraph.kg.engine.ingest import GrowingKG
from evergraph.kg.engine.lifelong import LifelongRun
from evergraph.kg.engine.model import KGEModel
from evergraph.kg.engine.run_files import RunPaths, load_model_checkpoint, read_entry
from tests.conftest import fast_config


@pytest.fixture(scope="module")
def run(example_data: Path, tmp_path_factory: pytest.TempPathFactory) -> RunPaths:
    """A short lkge run over snapshots 0..2 (quality does not matter: both versions are ranked alike)."""
    out = tmp_path_factory.mktemp("comparison") / "run"
    LifelongRun(data=example_data, out=out, config=fast_config("lkge", max_epochs=5), show_progress=False).run(upto=2)
    return RunPaths(out)


def version(run: RunPaths, snapshot: int) -> KGEModel:
    """A fresh copy of the model learned up to ``snapshot``."""
    return load_model_checkpoint(run.snapshot_checkpoint(snapshot))[0]


def test_compares_on_what_the_champion_knows(example_data: Path, run: RunPaths) -> None:
    champion, new = version(run, 0), version(run, 1)
    kg = GrowingKG.load(example_data, upto=1)
    test = kg.snapshots[1].test
    known = (test[:, 0] < champion.num_entities) & (test[:, 2] < champion.num_entities)
    known &= test[:, 1] < champion.num_relations
    result = compare_on_new_test_set(new=new, champion=champion, kg=kg, snapshot=1)
    assert result.shared_queries == int(known.sum()) and 0 < result.shared_queries < result.total_queries
    assert 0 < result.new_mrr <= 1 and 0 < result.champion_mrr <= 1
    # a version compared with itself scores the same
    same = compare_on_new_test_set(new=new, champion=new, kg=kg, snapshot=1)
    assert same.shared_queries == result.total_queries
    assert math.isclose(same.new_mrr, same.champion_mrr)


def test_nothing_shared_gives_no_numbers(example_data: Path, run: RunPaths) -> None:
    new, champion = version(run, 1), version(run, 0)
    champion.entity.data = champion.entity.data[:1]  # a champion that knows a single entity
    kg = GrowingKG.load(example_data, upto=1)
    with torch.no_grad():
        result = compare_on_new_test_set(new=new, champion=champion, kg=kg, snapshot=1)
    assert result.shared_queries == 0 and result.new_mrr is None and result.champion_mrr is None


def test_earlier_test_sets_are_ranked_against_the_champions_entities(example_data: Path, run: RunPaths) -> None:
    champion, new = version(run, 0), version(run, 2)
    kg = GrowingKG.load(example_data, upto=2)
    result = compare_on_earlier_test_sets(new=new, champion=champion, kg=kg, snapshot=2, test_sets=[0, 1])
    # test set 1 has triples about entities the champion never saw; the part it can score is compared
    assert result.test_sets == [0, 1] and result.queries < len(kg.snapshots[0].test) + len(kg.snapshots[1].test)
    assert all(0 < result.new_mrr[j] <= 1 and 0 < result.champion_mrr[j] <= 1 for j in result.test_sets)
    same = compare_on_earlier_test_sets(new=champion, champion=champion, kg=kg, snapshot=2, test_sets=[0])
    assert math.isclose(same.new_mrr[0], same.champion_mrr[0])
    # fewer candidates than the new version's own evaluation: its MRR on test set 0 is at least the recorded one
    recorded = {row["snapshot"]: row["mrr"] for row in read_entry(run, 2)["per_test_set"]}
    assert result.new_mrr[0] >= recorded[0] - 1e-6


def test_earlier_test_sets_can_be_sampled(example_data: Path, run: RunPaths) -> None:
    champion, new = version(run, 0), version(run, 1)
    kg = GrowingKG.load(example_data, upto=1)
    sampled = compare_on_earlier_test_sets(new=new, champion=champion, kg=kg, snapshot=1, test_sets=[0], max_triples=20)
    again = compare_on_earlier_test_sets(new=new, champion=champion, kg=kg, snapshot=1, test_sets=[0], max_triples=20)
    every = compare_on_earlier_test_sets(new=new, champion=champion, kg=kg, snapshot=1, test_sets=[0], max_triples=None)
    assert sampled.queries == 20 < every.queries == len(kg.snapshots[0].test)
    assert sampled == again  # the same sample each time, for both versions


def test_the_gates_budget_over_earlier_test_sets_stays_flat() -> None:
    from evergraph.kg.engine.comparison import EARLIER_TRIPLES, MIN_TRIPLES_PER_SET, triples_per_test_set

    assert triples_per_test_set(1) == EARLIER_TRIPLES and triples_per_test_set(0) == EARLIER_TRIPLES
    assert triples_per_test_set(4) == EARLIER_TRIPLES // 4
    for sets in range(1, 10):  # the total stays at the budget until the per-set floor takes over
        assert triples_per_test_set(sets) * sets <= EARLIER_TRIPLES
    assert triples_per_test_set(50) == MIN_TRIPLES_PER_SET


def test_the_cap_bounds_the_triples_ranked_per_earlier_test_set(example_data: Path, run: RunPaths) -> None:
    champion, new = version(run, 0), version(run, 1)
    kg = GrowingKG.load(example_data, upto=1)
    options = {"new": new, "champion": champion, "kg": kg, "snapshot": 1, "test_sets": [0]}
    few, more = (
        compare_on_earlier_test_sets(**options, max_triples=10),
        compare_on_earlier_test_sets(**options, max_triples=25),
    )
    assert few.queries == 10 and more.queries == 25
    assert few.champion_mrr != more.champion_mrr or few.new_mrr != more.new_mrr  # other triples were added
