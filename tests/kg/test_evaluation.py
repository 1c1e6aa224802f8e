"""Tests of evergraph.kg.engine.evaluation: filtered ranks against a brute-force reference, metrics, protocols,
streams."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
import torch

from evergraph.kg.engine.evaluation import (
    PROTOCOLS,
    RankingMetrics,
    Ranks,
    ScoreFn,
    StreamResult,
    doubled_queries,
    evaluate_split,
    evaluate_stream,
    filtered_ranks,
)
from evergraph.kg.engine.snapshot import Snapshot
from evergraph.kg.errors import UnknownComponentError

# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------


def table_score_fn(table: torch.Tensor, calls: list[tuple[torch.Tensor, torch.Tensor, int]] | None = None) -> ScoreFn:
    """A score_fn reading ``table[entity, model_relation, :num_candidates]`` (a fresh copy per call)."""

    def score_fn(entities: torch.Tensor, relations: torch.Tensor, num_candidates: int) -> torch.Tensor:
        if calls is not None:
            calls.append((entities.clone(), relations.clone(), num_candidates))
        return table[entities, relations, :num_candidates].clone()

    return score_fn


def _better(a: float, b: float) -> bool:
    """``a`` scores strictly better than ``b``; NaN is worse than every number and ties with NaN."""
    if math.isnan(a):
        return False
    if math.isnan(b):
        return True
    return a > b


def _equal(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def reference_ranks(
    *, table: torch.Tensor, triples: torch.Tensor, known: torch.Tensor, num_candidates: int
) -> tuple[list[float], list[float]]:
    """Slow, obvious filtered ranks: Python sets of known answers and explicit counting."""
    answers_of: dict[tuple[int, int], set[int]] = defaultdict(set)
    for h, r, t in known.tolist():
        answers_of[(h, 2 * r)].add(t)
        answers_of[(t, 2 * r + 1)].add(h)
    queries = [(h, 2 * r, t) for h, r, t in triples.tolist()] + [(t, 2 * r + 1, h) for h, r, t in triples.tolist()]
    optimistic: list[float] = []
    pessimistic: list[float] = []
    for entity, relation, answer in queries:
        scores = table[entity, relation].tolist()
        true = scores[answer]
        opt = pes = 1
        for candidate in range(num_candidates):
            if candidate == answer or candidate in answers_of[(entity, relation)]:
                continue
            if _better(scores[candidate], true):
                opt += 1
                pes += 1
            elif _equal(scores[candidate], true):
                pes += 1
        optimistic.append(float(opt))
        pessimistic.append(float(pes))
    return optimistic, pessimistic


def random_graph(
    *, seed: int, num_entities: int, num_relations: int, num_known: int, num_test: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random known facts (with duplicates) and test triples: half taken from the known facts, half fresh."""
    g = torch.Generator().manual_seed(seed)
    known = torch.stack(
        [
            torch.randint(0, num_entities, (num_known,), generator=g),
            torch.randint(0, num_relations, (num_known,), generator=g),
            torch.randint(0, num_entities, (num_known,), generator=g),
        ],
        dim=1,
    )
    known = torch.cat([known, known[: num_known // 5]])  # duplicates must not matter
    from_known = known[torch.randperm(num_known, generator=g)[: num_test // 2]]
    fresh = torch.stack(
        [
            torch.randint(0, num_entities, (num_test - num_test // 2,), generator=g),
            torch.randint(0, num_relations, (num_test - num_test // 2,), generator=g),
            torch.randint(0, num_entities, (num_test - num_test // 2,), generator=g),
        ],
        dim=1,
    )
    return known, torch.cat([from_known, fresh])


def make_snapshot(
    index: int, *, train: list[list[int]], test: list[list[int]], num_entities: int, num_relations: int
) -> Snapshot:
    def as_tensor(rows: list[list[int]]) -> torch.Tensor:
        return torch.tensor(rows, dtype=torch.long).reshape(-1, 3)

    return Snapshot(
        index=index,
        train=as_tensor(train),
        valid=as_tensor([]),
        test=as_tensor(test),
        num_entities=num_entities,
        num_relations=num_relations,
        content_hash=f"hash-{index}",
    )


# ---------------------------------------------------------------------------------------------------------
# Queries and filtered ranks
# ---------------------------------------------------------------------------------------------------------


def test_doubled_queries_tails_first_then_heads_with_inverse_ids() -> None:
    triples = torch.tensor([[0, 1, 2], [3, 0, 4]])
    entities, relations, answers = doubled_queries(triples)
    assert entities.tolist() == [0, 3, 2, 4]
    assert relations.tolist() == [2, 0, 3, 1]
    assert answers.tolist() == [2, 4, 0, 3]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("block_size", [1, 7, 64])
def test_filtered_ranks_match_bruteforce_with_many_ties(seed: int, block_size: int) -> None:
    num_entities, num_relations = 15, 3
    known, triples = random_graph(
        seed=seed, num_entities=num_entities, num_relations=num_relations, num_known=60, num_test=20
    )
    g = torch.Generator().manual_seed(100 + seed)
    table = torch.randint(0, 4, (num_entities, 2 * num_relations, num_entities), generator=g).float()
    ranks = filtered_ranks(
        score_fn=table_score_fn(table),
        triples=triples,
        known=known,
        num_candidates=num_entities,
        block_size=block_size,
    )
    optimistic, pessimistic = reference_ranks(table=table, triples=triples, known=known, num_candidates=num_entities)
    assert ranks.optimistic.tolist() == optimistic
    assert ranks.pessimistic.tolist() == pessimistic
    assert ranks.optimistic.shape == (2 * len(triples),)
    assert torch.equal(ranks.realistic, (ranks.optimistic + ranks.pessimistic) / 2)
    assert (ranks.pessimistic > ranks.optimistic).any()  # the table really produced ties


@pytest.mark.parametrize("seed", range(4))
def test_filtered_ranks_match_bruteforce_with_nan_and_infinite_scores(seed: int) -> None:
    num_entities, num_relations = 12, 2
    known, triples = random_graph(
        seed=seed, num_entities=num_entities, num_relations=num_relations, num_known=40, num_test=16
    )
    g = torch.Generator().manual_seed(200 + seed)
    table = torch.randint(0, 3, (num_entities, 2 * num_relations, num_entities), generator=g).float()
    special = torch.rand(table.shape, generator=g)
    table[special < 0.15] = float("nan")
    table[(special >= 0.15) & (special < 0.25)] = float("-inf")
    table[(special >= 0.25) & (special < 0.3)] = float("inf")
    ranks = filtered_ranks(
        score_fn=table_score_fn(table),
        triples=triples,
        known=known,
        num_candidates=num_entities,
        block_size=5,
    )
    optimistic, pessimistic = reference_ranks(table=table, triples=triples, known=known, num_candidates=num_entities)
    assert ranks.optimistic.tolist() == optimistic
    assert ranks.pessimistic.tolist() == pessimistic


def test_filtered_ranks_with_fewer_candidates_than_known_entities() -> None:
    num_entities, num_relations, num_candidates = 14, 3, 9
    known, _ = random_graph(seed=7, num_entities=num_entities, num_relations=num_relations, num_known=80, num_test=0)
    inside = (known[:, 0] < num_candidates) & (known[:, 2] < num_candidates)
    triples = known[inside][:12]
    table = torch.randint(0, 4, (num_entities, 2 * num_relations, num_entities), generator=torch.Generator()).float()
    ranks = filtered_ranks(
        score_fn=table_score_fn(table),
        triples=triples,
        known=known,
        num_candidates=num_candidates,
        block_size=4,
    )
    optimistic, pessimistic = reference_ranks(table=table, triples=triples, known=known, num_candidates=num_candidates)
    assert ranks.optimistic.tolist() == optimistic
    assert ranks.pessimistic.tolist() == pessimistic


def test_integer_scores_and_relations_missing_from_the_filter() -> None:
    # Queries of relation 2 have no known facts at all (the filter only knows relations 0 and 1).
    known, _ = random_graph(seed=11, num_entities=10, num_relations=2, num_known=30, num_test=0)
    triples = torch.tensor([[0, 2, 1], [3, 2, 4], [5, 0, 6], [7, 1, 8]])
    table = torch.randint(0, 3, (10, 6, 10), generator=torch.Generator().manual_seed(5))
    ranks = filtered_ranks(
        score_fn=table_score_fn(table), triples=triples, known=known, num_candidates=10, block_size=3
    )
    optimistic, pessimistic = reference_ranks(table=table, triples=triples, known=known, num_candidates=10)
    assert ranks.optimistic.tolist() == optimistic
    assert ranks.pessimistic.tolist() == pessimistic


def test_known_other_answer_scoring_higher_is_filtered_unknown_one_is_not() -> None:
    # Query (0, r=0) with answer 1. Entity 2 is another known answer, entity 3 is not; both outscore 1.
    num_entities = 5
    table = torch.zeros(num_entities, 2, num_entities)
    table[0, 0] = torch.tensor([0.0, 1.0, 5.0, 0.0, 0.0])
    triples = torch.tensor([[0, 0, 1]])
    known = torch.tensor([[0, 0, 1], [0, 0, 2]])
    ranks = filtered_ranks(score_fn=table_score_fn(table), triples=triples, known=known, num_candidates=num_entities)
    assert ranks.optimistic[0].item() == 1.0 and ranks.pessimistic[0].item() == 1.0

    table[0, 0, 3] = 5.0  # an unknown candidate above the answer costs one place
    ranks = filtered_ranks(score_fn=table_score_fn(table), triples=triples, known=known, num_candidates=num_entities)
    assert ranks.optimistic[0].item() == 2.0 and ranks.pessimistic[0].item() == 2.0

    table[0, 0, 4] = 1.0  # a tie: optimistic ignores it, pessimistic counts it
    ranks = filtered_ranks(score_fn=table_score_fn(table), triples=triples, known=known, num_candidates=num_entities)
    assert ranks.optimistic[0].item() == 2.0 and ranks.pessimistic[0].item() == 3.0
    assert ranks.realistic[0].item() == 2.5


def test_constant_scores_give_the_middle_rank() -> None:
    triples = torch.tensor([[0, 0, 1]])
    known = torch.tensor([[0, 0, 1], [0, 0, 2]])

    def constant(entities: torch.Tensor, relations: torch.Tensor, num_candidates: int) -> torch.Tensor:
        return torch.zeros(len(entities), num_candidates)

    ranks = filtered_ranks(score_fn=constant, triples=triples, known=known, num_candidates=10)
    # Tail query: 8 unfiltered others tie; head query (1, 1) -> 0: 9 others tie.
    assert ranks.optimistic.tolist() == [1.0, 1.0]
    assert ranks.pessimistic.tolist() == [9.0, 10.0]


def test_nan_answer_is_ranked_worst_and_nan_candidate_never_outranks() -> None:
    table = torch.zeros(4, 2, 4)
    table[0, 0] = torch.tensor([1.0, float("nan"), 2.0, float("nan")])  # answer 1 is NaN
    table[1, 1] = torch.tensor([3.0, 0.0, float("nan"), 1.0])  # head query (1, 1) -> 0; NaN at 2
    ranks = filtered_ranks(
        score_fn=table_score_fn(table),
        triples=torch.tensor([[0, 0, 1]]),
        known=torch.empty(0, 3),
        num_candidates=4,
    )
    assert ranks.optimistic.tolist() == [3.0, 1.0]  # behind 0 and 2; tied with 3
    assert ranks.pessimistic.tolist() == [4.0, 1.0]


def test_head_queries_use_the_inverse_relation_id() -> None:
    calls: list[tuple[torch.Tensor, torch.Tensor, int]] = []
    table = torch.rand(6, 6, 6)
    triples = torch.tensor([[0, 2, 5], [1, 1, 4], [3, 0, 2]])
    filtered_ranks(
        score_fn=table_score_fn(table, calls), triples=triples, known=triples, num_candidates=6, block_size=4
    )
    entities = torch.cat([c[0] for c in calls])
    relations = torch.cat([c[1] for c in calls])
    assert [len(c[0]) for c in calls] == [4, 2]
    assert entities.tolist() == [0, 1, 3, 5, 4, 2]
    assert relations.tolist() == [4, 2, 0, 5, 3, 1]
    assert all(c[2] == 6 for c in calls)


def test_identical_computation_ties_exactly_with_the_answer() -> None:
    # A score_fn whose answer column is recomputed the same way as another column must tie exactly.
    emb = torch.randn(8, 16, generator=torch.Generator().manual_seed(3))
    emb[5] = emb[1]

    def score_fn(entities: torch.Tensor, relations: torch.Tensor, num_candidates: int) -> torch.Tensor:
        return (emb[entities].unsqueeze(1) * emb[:num_candidates].unsqueeze(0)).sum(-1)

    ranks = filtered_ranks(
        score_fn=score_fn, triples=torch.tensor([[0, 0, 1]]), known=torch.empty(0, 3), num_candidates=8
    )
    assert ranks.pessimistic[0] - ranks.optimistic[0] >= 1  # entity 5 ties with the answer 1


def test_answer_outside_the_candidates_is_a_value_error() -> None:
    table = torch.rand(6, 2, 6)
    with pytest.raises(ValueError, match="num_candidates=4"):
        filtered_ranks(
            score_fn=table_score_fn(table),
            triples=torch.tensor([[0, 0, 5]]),
            known=torch.empty(0, 3),
            num_candidates=4,
        )


def test_wrong_score_shape_is_a_value_error() -> None:
    def bad(entities: torch.Tensor, relations: torch.Tensor, num_candidates: int) -> torch.Tensor:
        return torch.zeros(len(entities), num_candidates + 1)

    with pytest.raises(ValueError, match="score_fn returned shape"):
        filtered_ranks(score_fn=bad, triples=torch.tensor([[0, 0, 1]]), known=torch.empty(0, 3), num_candidates=3)


def test_empty_triples_give_empty_ranks() -> None:
    ranks = filtered_ranks(
        score_fn=table_score_fn(torch.rand(3, 2, 3)),
        triples=torch.empty(0, 3, dtype=torch.long),
        known=torch.tensor([[0, 0, 1]]),
        num_candidates=3,
    )
    assert ranks.optimistic.numel() == 0 and ranks.pessimistic.numel() == 0


# ---------------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------------


def test_metrics_from_hand_checkable_ranks() -> None:
    metrics = RankingMetrics.from_ranks(torch.tensor([1.0, 2.0, 3.5, 11.0]))
    assert metrics.mrr == pytest.approx((1 + 1 / 2 + 1 / 3.5 + 1 / 11) / 4)
    assert metrics.hits_at_1 == 0.25
    assert metrics.hits_at_3 == 0.5
    assert metrics.hits_at_10 == 0.75
    assert metrics.num_queries == 4
    assert metrics.to_dict() == {
        "mrr": metrics.mrr,
        "hits@1": 0.25,
        "hits@3": 0.5,
        "hits@10": 0.75,
    }


def test_metrics_of_no_ranks_are_zero() -> None:
    metrics = RankingMetrics.from_ranks(torch.empty(0))
    assert metrics == RankingMetrics(mrr=0.0, hits_at_1=0.0, hits_at_3=0.0, hits_at_10=0.0, num_queries=0)


def test_combine_weights_by_number_of_queries_and_skips_empty_parts() -> None:
    a = RankingMetrics.from_ranks(torch.tensor([1.0]))
    b = RankingMetrics.from_ranks(torch.tensor([2.0, 4.0, 20.0]))
    empty = RankingMetrics.from_ranks(torch.empty(0))
    pooled = RankingMetrics.combine([a, empty, b])
    direct = RankingMetrics.from_ranks(torch.tensor([1.0, 2.0, 4.0, 20.0]))
    assert pooled.num_queries == 4
    for key, value in direct.to_dict().items():
        assert pooled.to_dict()[key] == pytest.approx(value)
    assert RankingMetrics.combine([]).num_queries == 0
    assert RankingMetrics.combine([empty]) == empty


def test_ranks_realistic_is_the_mean() -> None:
    ranks = Ranks(optimistic=torch.tensor([1.0, 2.0]), pessimistic=torch.tensor([4.0, 2.0]))
    assert ranks.realistic.tolist() == [2.5, 2.0]


# ---------------------------------------------------------------------------------------------------------
# Protocols and streams
# ---------------------------------------------------------------------------------------------------------


def two_snapshots() -> list[Snapshot]:
    """Snapshot 0 knows entities 0..3, snapshot 1 adds 4 and 5 and the fact (0, 0, 2)."""
    s0 = make_snapshot(0, train=[[0, 0, 3], [2, 1, 3]], test=[[0, 0, 1]], num_entities=4, num_relations=2)
    s1 = make_snapshot(1, train=[[0, 0, 2], [4, 1, 5]], test=[[4, 0, 5], [5, 1, 0]], num_entities=6, num_relations=2)
    return [s0, s1]


def two_snapshot_table() -> torch.Tensor:
    """Scores where the tail query (0, 0) of test triple (0, 0, 1) puts 2 and 4 above the answer 1."""
    table = torch.zeros(6, 4, 6)
    table[0, 0] = torch.tensor([0.0, 1.0, 2.0, 3.0, 2.0, 0.0])  # 3 is known in snapshot 0 (train)
    return table


def test_lkge_protocol_uses_only_the_entities_and_facts_up_to_the_test_snapshot() -> None:
    calls: list[tuple[torch.Tensor, torch.Tensor, int]] = []
    snapshots = two_snapshots()
    metrics = evaluate_split(
        score_fn=table_score_fn(two_snapshot_table(), calls),
        snapshots=snapshots,
        upto=1,
        target=0,
        protocol="lkge-paper",
    )
    assert {c[2] for c in calls} == {4}
    # Tail query: 3 filtered (known at 0), 2 is not known yet and outranks 1, 4 is no candidate -> rank 2.
    # Head query (1, 1) -> 0: all zeros, others 2, 3 tie (nothing filtered) -> realistic (1 + 4) / 2.
    expected = RankingMetrics.from_ranks(torch.tensor([2.0, 2.5]))
    assert metrics == expected


def test_all_entities_protocol_uses_every_entity_and_fact_up_to_now() -> None:
    calls: list[tuple[torch.Tensor, torch.Tensor, int]] = []
    snapshots = two_snapshots()
    metrics = evaluate_split(
        score_fn=table_score_fn(two_snapshot_table(), calls), snapshots=snapshots, upto=1, target=0
    )
    assert {c[2] for c in calls} == {6}
    # Tail query: 3 and 2 filtered, the new entity 4 outranks 1 -> rank 2.
    # Head query (1, 1) -> 0: 5 others all tie at zero -> realistic (1 + 6) / 2.
    assert metrics == RankingMetrics.from_ranks(torch.tensor([2.0, 3.5]))


@pytest.mark.parametrize("protocol", ["all-entities", "lkge-paper"])
def test_stream_is_the_query_weighted_combination_of_its_test_sets(protocol: str) -> None:
    snapshots = two_snapshots()
    score_fn = table_score_fn(torch.rand(6, 4, 6, generator=torch.Generator().manual_seed(1)))
    result = evaluate_stream(score_fn=score_fn, snapshots=snapshots, upto=1, protocol=protocol, block_size=3)
    assert isinstance(result, StreamResult)
    assert result.protocol == protocol
    assert [j for j, _ in result.per_test_set] == [0, 1]
    assert [m.num_queries for _, m in result.per_test_set] == [2, 4]
    assert result.stream == RankingMetrics.combine([m for _, m in result.per_test_set])
    for j, metrics in result.per_test_set:
        single = evaluate_split(score_fn=score_fn, snapshots=snapshots, upto=1, target=j, protocol=protocol)
        assert single == metrics
    payload = result.to_dict()
    assert payload["protocol"] == protocol
    assert payload["stream"] == result.stream.to_dict()
    assert payload["per_test_set"] == [{"snapshot": j, **m.to_dict()} for j, m in result.per_test_set]


def test_stream_after_the_first_snapshot_only_sees_its_test_set() -> None:
    snapshots = two_snapshots()
    calls: list[tuple[torch.Tensor, torch.Tensor, int]] = []
    result = evaluate_stream(score_fn=table_score_fn(two_snapshot_table(), calls), snapshots=snapshots, upto=0)
    assert [j for j, _ in result.per_test_set] == [0]
    assert {c[2] for c in calls} == {4}
    assert result.stream == RankingMetrics.from_ranks(torch.tensor([2.0, 2.5]))


def test_empty_test_set_is_listed_with_zeros_and_adds_nothing() -> None:
    snapshots = two_snapshots()
    snapshots[0].test = torch.empty(0, 3, dtype=torch.long)
    result = evaluate_stream(
        score_fn=table_score_fn(torch.rand(6, 4, 6)), snapshots=snapshots, upto=1, protocol="lkge-paper"
    )
    first = result.per_test_set[0]
    assert first == (0, RankingMetrics(mrr=0.0, hits_at_1=0.0, hits_at_3=0.0, hits_at_10=0.0, num_queries=0))
    assert result.stream == result.per_test_set[1][1]


def test_valid_split_is_evaluated_when_asked() -> None:
    snapshots = two_snapshots()
    snapshots[1].valid = torch.tensor([[1, 1, 4]])
    calls: list[tuple[torch.Tensor, torch.Tensor, int]] = []
    metrics = evaluate_split(
        score_fn=table_score_fn(torch.rand(6, 4, 6), calls),
        snapshots=snapshots,
        upto=1,
        target=1,
        split="valid",
    )
    assert metrics.num_queries == 2
    assert torch.cat([c[0] for c in calls]).tolist() == [1, 4]
    with pytest.raises(ValueError, match="split"):
        evaluate_split(score_fn=table_score_fn(torch.rand(6, 4, 6)), snapshots=snapshots, upto=1, target=1, split="x")


def test_unknown_protocol_names_the_known_ones() -> None:
    with pytest.raises(UnknownComponentError) as caught:
        evaluate_stream(score_fn=table_score_fn(torch.rand(6, 4, 6)), snapshots=two_snapshots(), upto=1, protocol="x")
    message = str(caught.value)
    assert "'x'" in message and "all-entities" in message and "lkge-paper" in message
    with pytest.raises(KeyError):
        PROTOCOLS["nope"]
    assert set(PROTOCOLS) == {"all-entities", "lkge-paper"}
    assert "lkge-paper" in PROTOCOLS and "nope" not in PROTOCOLS


def test_target_and_upto_out_of_range_are_value_errors() -> None:
    score_fn = table_score_fn(torch.rand(6, 4, 6))
    with pytest.raises(ValueError, match="upto"):
        evaluate_stream(score_fn=score_fn, snapshots=two_snapshots(), upto=2)
    with pytest.raises(ValueError, match="target"):
        evaluate_split(score_fn=score_fn, snapshots=two_snapshots(), upto=0, target=1)
