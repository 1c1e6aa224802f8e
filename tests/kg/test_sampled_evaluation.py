"""Tests of sampled filtered ranking (OGB-wikikg2 style) in evergraph.kg.engine.evaluation and its size threshold
in EvaluationConfig: full ranking below the threshold, a fixed, filtered, bounded sample above it."""

from __future__ import annotations

from collections import defaultdict

import pytest
import torch

from evergraph.kg.engine.config import EvaluationConfig, RunConfig
from evergraph.kg.engine.evaluation import (
    CandidateSample,
    doubled_queries,
    evaluate_stream,
    filtered_ranks,
    sample_candidates,
)
from evergraph.kg.engine.model import KGEModel
from evergraph.kg.engine.snapshot import Snapshot


def _random_graph(*, entities: int, relations: int, facts: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    triples = torch.stack(
        [
            torch.randint(entities, (facts,), generator=g),
            torch.randint(relations, (facts,), generator=g),
            torch.randint(entities, (facts,), generator=g),
        ],
        1,
    )
    return torch.unique(triples, dim=0)


def _snapshot(train: torch.Tensor, test: torch.Tensor, *, entities: int, relations: int) -> Snapshot:
    return Snapshot(
        index=0,
        train=train,
        valid=torch.empty(0, 3, dtype=torch.long),
        test=test,
        num_entities=entities,
        num_relations=relations,
        content_hash="hash-0",
    )


def _model(entities: int, relations: int, *, interaction: str = "transe") -> KGEModel:
    return KGEModel(
        interaction=interaction,
        num_entities=entities,
        num_relations=relations,
        dim=8,
        generator=torch.Generator().manual_seed(3),
    )


def _reference_sampled_ranks(
    *, model: KGEModel, triples: torch.Tensor, known: torch.Tensor, num_candidates: int, sample: CandidateSample
) -> list[float]:
    """Slow, obvious sampled ranks: per query, its sample as a Python set minus known answers and the answer."""
    answers_of: dict[tuple[int, int], set[int]] = defaultdict(set)
    for h, r, t in known.tolist():
        answers_of[(h, 2 * r)].add(t)
        answers_of[(t, 2 * r + 1)].add(h)
    entities, relations, answers = doubled_queries(triples)
    drawn = sample_candidates(
        entities=entities, relations=relations, answers=answers, sample=sample, num_candidates=num_candidates
    )
    full = model.score_fn()(entities, relations, num_candidates)
    ranks = []
    for i, (e, r, a) in enumerate(zip(entities.tolist(), relations.tolist(), answers.tolist(), strict=True)):
        others = set(drawn[i].tolist()) - answers_of[(e, r)] - {a}
        true = float(full[i, a])
        better = sum(float(full[i, c]) > true for c in others)
        equal = sum(float(full[i, c]) == true for c in others)
        ranks.append(1 + better + equal / 2)
    return ranks


def test_below_the_threshold_ranking_is_full_and_identical() -> None:
    entities, relations = 40, 3
    facts = _random_graph(entities=entities, relations=relations, facts=200, seed=1)
    snap = _snapshot(facts[:150], facts[150:], entities=entities, relations=relations)
    model = _model(entities, relations)
    config = EvaluationConfig(full_ranking_max_entities=entities)
    assert config.sample_for(entities) is None
    today = evaluate_stream(score_fn=model.score_fn(), snapshots=[snap], upto=0)
    switched = evaluate_stream(
        score_fn=model.score_fn(),
        snapshots=[snap],
        upto=0,
        sample=config.sample_for(entities),
        candidate_score_fn=model.candidate_score_fn(),
    )
    assert switched.to_dict() == today.to_dict()
    assert today.to_dict()["ranking"] == "full"


def test_above_the_threshold_a_fixed_sample_is_used_and_stated() -> None:
    config = EvaluationConfig(full_ranking_max_entities=30, sample_size=7, sample_seed=5)
    assert config.sample_for(31) == CandidateSample(size=7, seed=5)
    entities, relations = 60, 3
    facts = _random_graph(entities=entities, relations=relations, facts=300, seed=2)
    snap = _snapshot(facts[:200], facts[200:], entities=entities, relations=relations)
    model = _model(entities, relations)
    result = evaluate_stream(
        score_fn=model.score_fn(),
        snapshots=[snap],
        upto=0,
        sample=config.sample_for(entities),
        candidate_score_fn=model.candidate_score_fn(),
    )
    assert result.to_dict()["ranking"] == "sampled-7"
    assert result.stream.num_queries == 2 * len(facts[200:])


@pytest.mark.parametrize("interaction", ["transe", "distmult", "rotate", "complex"])
def test_sampled_ranks_match_a_brute_force_reference(interaction: str) -> None:
    entities, relations = 50, 4
    facts = _random_graph(entities=entities, relations=relations, facts=400, seed=4)
    test = facts[:60]
    model = _model(entities, relations, interaction=interaction)
    sample = CandidateSample(size=12, seed=9)
    ranks = filtered_ranks(
        score_fn=model.score_fn(),
        triples=test,
        known=facts,
        num_candidates=entities,
        sample=sample,
        candidate_score_fn=model.candidate_score_fn(),
        block_size=7,
    )
    expected = _reference_sampled_ranks(model=model, triples=test, known=facts, num_candidates=entities, sample=sample)
    assert ranks.realistic.tolist() == pytest.approx(expected, abs=1e-6)


def test_sampled_ranks_are_bounded_deterministic_and_independent_of_blocks() -> None:
    entities, relations = 500, 5
    facts = _random_graph(entities=entities, relations=relations, facts=3000, seed=6)
    test = facts[:300]
    model = _model(entities, relations)
    sample = CandidateSample(size=20, seed=0)

    def ranks(block_size: int, candidate_scores: bool) -> torch.Tensor:
        return filtered_ranks(
            score_fn=model.score_fn(),
            triples=test,
            known=facts,
            num_candidates=entities,
            sample=sample,
            candidate_score_fn=model.candidate_score_fn() if candidate_scores else None,
            block_size=block_size,
        ).pessimistic

    first = ranks(2048, True)
    assert int(first.max()) <= sample.size + 1
    assert int(first.min()) >= 1
    assert torch.equal(first, ranks(2048, True))  # the sample is fixed
    assert torch.equal(first, ranks(13, True))  # whatever the blocks
    assert torch.equal(first, ranks(64, False))  # columns of the full scores give the same ranks
    other_seed = filtered_ranks(
        score_fn=model.score_fn(),
        triples=test,
        known=facts,
        num_candidates=entities,
        sample=CandidateSample(size=20, seed=1),
    ).pessimistic
    assert not torch.equal(first, other_seed)  # the seed matters


def test_known_answers_in_the_sample_are_filtered() -> None:
    # every query's known answers score best: filtered, the test answer (also scored best) ranks first
    entities = 30
    known = torch.tensor([[0, 0, t] for t in range(1, 25)])
    test = torch.tensor([[0, 0, 3]])
    entities_scores = torch.zeros(entities)
    entities_scores[1:25] = 10.0

    def score_fn(e: torch.Tensor, r: torch.Tensor, n: int) -> torch.Tensor:
        out = torch.zeros(e.numel(), n)
        tail = r % 2 == 0
        out[tail] = entities_scores[:n]
        out[~tail, 0] = 10.0  # the head query's answer (0) is best too
        return out

    # a big sample over 30 ids draws nearly all of them: unfiltered, the answer would tie with 23 others
    ranks = filtered_ranks(
        score_fn=score_fn, triples=test, known=known, num_candidates=entities, sample=CandidateSample(size=200)
    )
    assert ranks.realistic.tolist() == [1.0, 1.0]
    unfiltered = filtered_ranks(
        score_fn=score_fn,
        triples=test,
        known=test,
        num_candidates=entities,
        sample=CandidateSample(size=200),
    )
    assert unfiltered.realistic[0] > 5


def test_a_sample_covering_every_candidate_equals_full_filtered_ranking() -> None:
    entities, relations = 25, 3
    facts = _random_graph(entities=entities, relations=relations, facts=150, seed=8)
    model = _model(entities, relations)
    full = filtered_ranks(score_fn=model.score_fn(), triples=facts[:40], known=facts, num_candidates=entities)
    sampled = filtered_ranks(
        score_fn=model.score_fn(),
        triples=facts[:40],
        known=facts,
        num_candidates=entities,
        sample=CandidateSample(size=2000),  # P(some id never drawn) < 25 * (24/25)**2000, about 1e-34
        candidate_score_fn=model.candidate_score_fn(),
    )
    assert torch.equal(full.optimistic, sampled.optimistic)
    assert torch.equal(full.pessimistic, sampled.pessimistic)


def test_samples_spread_over_all_candidates() -> None:
    n = 1000
    drawn = sample_candidates(
        entities=torch.arange(200),
        relations=torch.zeros(200, dtype=torch.long),
        answers=torch.ones(200, dtype=torch.long),
        sample=CandidateSample(size=500),
        num_candidates=n,
    )
    assert drawn.shape == (200, 500)
    assert int(drawn.min()) >= 0 and int(drawn.max()) < n
    counts = torch.bincount(drawn.reshape(-1), minlength=n).double()
    assert counts.min() > 40 and counts.max() < 180  # expected 100 each; a broken hash clusters


def test_bad_sample_size_and_default_checksum() -> None:
    with pytest.raises(ValueError, match="size >= 1"):
        CandidateSample(size=0)
    with pytest.raises(ValueError):
        EvaluationConfig(sample_size=0)
    default = RunConfig()
    assert default.checksum() == RunConfig(evaluation=EvaluationConfig()).checksum()
    assert default.checksum() != RunConfig(evaluation=EvaluationConfig(sample_size=10)).checksum()


def test_a_run_above_the_threshold_states_sampled_ranking_in_every_entry(example_data, tmp_path) -> None:
    from evergraph.kg.engine.lifelong import LifelongRun
    from evergraph.kg.service.cli import metrics_table
    from tests.conftest import fast_config

    config = fast_config("finetune", max_epochs=2).model_copy(
        update={"evaluation": EvaluationConfig(full_ranking_max_entities=1, sample_size=10)}
    )
    metrics = LifelongRun(data=example_data, out=tmp_path, config=config, show_progress=False).run(upto=1)
    assert [entry["ranking"] for entry in metrics["snapshots"]] == ["sampled-10", "sampled-10"]
    for entry in metrics["snapshots"]:
        assert all(1 / 11 <= row["mrr"] <= 1 for row in entry["per_test_set"])  # ranks are at most 11
    assert "sampled-10 ranking" in str(metrics_table(metrics).title)


def test_the_gate_comparison_ranks_both_versions_on_the_same_samples(example_data) -> None:
    from evergraph.kg.engine.comparison import compare_on_earlier_test_sets, compare_on_new_test_set
    from evergraph.kg.engine.ingest import load_shared

    kg = load_shared(example_data, upto=1)
    first, second = kg.snapshots[0], kg.snapshots[1]
    champion = _model(first.num_entities, first.num_relations)
    new = _model(second.num_entities, second.num_relations)
    options = {"new": new, "champion": champion, "kg": kg, "snapshot": 1}
    full = compare_on_new_test_set(**options)
    covering = compare_on_new_test_set(**options, sample=CandidateSample(size=20 * first.num_entities))
    assert covering.to_dict() == full.to_dict()  # a sample drawing every candidate is full ranking
    small = compare_on_new_test_set(**options, sample=CandidateSample(size=5))
    assert small.champion_mrr >= 1 / 6 and small.new_mrr >= 1 / 6  # ranks are at most 6
    earlier = compare_on_earlier_test_sets(**options, test_sets=[0], sample=CandidateSample(size=5))
    assert earlier.champion_mrr[0] >= 1 / 6


def test_the_threshold_and_sample_size_are_command_line_options() -> None:
    from evergraph.kg.service.cli import build_parser, engine_config

    args = build_parser().parse_args(
        ["train", "--data", "d", "--out", "o", "--full-ranking-max-entities", "5", "--eval-sample-size", "7"]
    )
    assert engine_config(args).evaluation == EvaluationConfig(full_ranking_max_entities=5, sample_size=7)
    assert engine_config(build_parser().parse_args(["train", "--data", "d", "--out", "o"])) == RunConfig()
