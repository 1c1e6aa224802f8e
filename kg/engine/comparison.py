"""Compare two model versions on equal terms, for the promotion gate: on the newest test set and on the earlier ones.

The champion was trained before the newest snapshot arrived, so it cannot score facts about entities or
relations that appeared later. The fair comparison is on the part of the newest test set the champion *can*
score: test triples whose head, relation and tail all existed in the champion's vocabulary, ranked against
the champion's entities (ids ``0..E_champion-1``, a prefix of the newer vocabulary because ids are
append-only), filtered by every fact known up to the newest snapshot. Both versions are ranked on exactly those
queries, those candidates and that filter, so their MRRs are comparable.

The same holds for forgetting. The MRRs recorded when each version was trained are not comparable under the
``all-entities`` protocol: a later version ranks the old test facts among more entities, so its MRR on an old
test set drops even when it forgot nothing. :func:`compare_on_earlier_test_sets` ranks both versions on the
earlier test sets against the champion's entities, with the same filter, so a drop there is real forgetting.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from evergraph.kg.engine.evaluation import CandidateSample, RankingMetrics, filtered_ranks
from evergraph.kg.engine.ingest import GrowingKG
from evergraph.kg.engine.model import KGEModel
from evergraph.kg.engine.snapshot import retained

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewTestSetComparison:
    """MRRs of the new version and the champion on the shared part of test set ``snapshot``."""

    snapshot: int
    shared_queries: int
    """Test triples both versions can score (each gives a head and a tail query)."""
    total_queries: int
    """All evaluable test triples of the snapshot."""
    new_mrr: float | None
    champion_mrr: float | None
    """``None`` for both when no test triple can be scored by the champion."""

    def to_dict(self) -> dict[str, float | int | None]:
        return {
            "snapshot": self.snapshot,
            "shared_queries": self.shared_queries,
            "total_queries": self.total_queries,
            "new_mrr": self.new_mrr,
            "champion_mrr": self.champion_mrr,
        }


@dataclass(frozen=True)
class EarlierTestSetsComparison:
    """MRRs of the new version and the champion on earlier test sets, ranked against the champion's entities."""

    test_sets: list[int]
    queries: int
    """Test triples ranked per version (each gives a head and a tail query)."""
    new_mrr: dict[int, float] = field(default_factory=dict)
    champion_mrr: dict[int, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (test-set keys as ints)."""
        return {
            "test_sets": list(self.test_sets),
            "queries": self.queries,
            "new_mrr": dict(self.new_mrr),
            "champion_mrr": dict(self.champion_mrr),
        }


EARLIER_TRIPLES = 10_000
"""Triples the gate ranks on all earlier test sets together (each version; split evenly between the sets)."""
MIN_TRIPLES_PER_SET = 1_000
"""...but at least this many per earlier test set (the gate compares the plain mean of per-set MRRs)."""


def triples_per_test_set(test_sets: int) -> int:
    """The ``max_triples`` of each of ``test_sets`` earlier test sets: :data:`EARLIER_TRIPLES` split evenly, at
    least :data:`MIN_TRIPLES_PER_SET`. The mean of the per-set MRRs, which the gate compares, then rests on about
    10,000 triples (standard error about 0.003, less for the paired difference of two versions) however long the
    history, instead of 5,000 more per snapshot."""
    return max(MIN_TRIPLES_PER_SET, EARLIER_TRIPLES // max(test_sets, 1))


def _check_versions(new: KGEModel, champion: KGEModel) -> None:
    if champion.num_entities > new.num_entities or champion.num_relations > new.num_relations:
        raise ValueError(
            f"the champion knows more entities/relations ({champion.num_entities}/{champion.num_relations}) than "
            f"the new version ({new.num_entities}/{new.num_relations}); it is not an earlier version of it"
        )


def _scoreable(test: torch.Tensor, champion: KGEModel) -> torch.Tensor:
    """The test triples whose head, relation and tail the champion knows."""
    test = test.reshape(-1, 3).long().cpu()
    return test[
        (test[:, 0] < champion.num_entities)
        & (test[:, 2] < champion.num_entities)
        & (test[:, 1] < champion.num_relations)
    ]


def _mrr(
    model: KGEModel,
    triples: torch.Tensor,
    known: torch.Tensor,
    *,
    candidates: int,
    block_size: int,
    sample: CandidateSample | None = None,
) -> float:
    ranks = filtered_ranks(
        score_fn=model.score_fn(),
        triples=triples,
        known=known,
        num_candidates=candidates,
        block_size=block_size,
        sample=sample,
        candidate_score_fn=model.candidate_score_fn(),
    )
    return RankingMetrics.from_ranks(ranks.realistic).mrr


@torch.inference_mode()
def compare_on_earlier_test_sets(
    *,
    new: KGEModel,
    champion: KGEModel,
    kg: GrowingKG,
    snapshot: int,
    test_sets: Sequence[int],
    max_triples: int | None = 5000,
    block_size: int = 2048,
    sample: CandidateSample | None = None,
) -> EarlierTestSetsComparison:
    """Rank the ``test_sets`` (earlier snapshots) with both models against the champion's entities, filtered by
    every fact known up to ``snapshot`` (the new version's); ``kg`` must hold snapshots up to ``snapshot``.
    Test sets with no triple the champion can score are left out. ``max_triples`` (default 5,000) caps the
    triples ranked per test set: a larger set is sampled (the same fixed sample for both versions, seed 0; a
    smaller cap takes a prefix of the same permutation); the standard error of an MRR over 5,000 triples (10,000
    queries) is about 0.004, well below the gate's tolerance. The pipeline's gate passes
    :func:`triples_per_test_set` of the number of earlier test sets, so its cost stays flat as history grows.
    ``None`` ranks every triple. ``sample`` (default
    None: full ranking) ranks both versions against the same fixed candidate sample per query instead."""
    _check_versions(new, champion)
    known = kg.known_facts(snapshot)
    compared: list[int] = []
    new_mrr: dict[int, float] = {}
    champion_mrr: dict[int, float] = {}
    queries = 0
    for j in test_sets:
        # retracted facts left the known facts (kg.known_facts) and leave the test sets too
        triples = _scoreable(retained(kg.snapshots, index=j, upto=snapshot, split="test"), champion)
        if triples.shape[0] == 0:
            continue
        if max_triples is not None and triples.shape[0] > max_triples:
            chosen = torch.randperm(triples.shape[0], generator=torch.Generator().manual_seed(0))[:max_triples]
            triples = triples[chosen.sort().values]
        compared.append(j)
        queries += int(triples.shape[0])
        options = {"candidates": champion.num_entities, "block_size": block_size, "sample": sample}
        new_mrr[j] = _mrr(new, triples, known, **options)
        champion_mrr[j] = _mrr(champion, triples, known, **options)
    result = EarlierTestSetsComparison(test_sets=compared, queries=queries, new_mrr=new_mrr, champion_mrr=champion_mrr)
    logger.info("earlier test sets: %s", result.to_dict())
    return result


@torch.inference_mode()
def compare_on_new_test_set(
    *,
    new: KGEModel,
    champion: KGEModel,
    kg: GrowingKG,
    snapshot: int,
    block_size: int = 2048,
    sample: CandidateSample | None = None,
) -> NewTestSetComparison:
    """Rank the test triples of ``snapshot`` that ``champion`` knows with both models (see the module doc).

    ``kg`` must hold snapshots up to ``snapshot``; ``champion`` must be an earlier version of ``new``'s lineage
    (its ids a prefix of ``new``'s). ``block_size`` (default 2048) queries are scored at a time. ``sample``
    (default None: full ranking) ranks both against the same fixed candidate sample per query instead.
    """
    _check_versions(new, champion)
    test = kg.snapshots[snapshot].test.reshape(-1, 3).long().cpu()
    shared = _scoreable(test, champion)
    if shared.shape[0] == 0:
        logger.info("no test triple of snapshot %d is known to the champion; nothing to compare", snapshot)
        return NewTestSetComparison(
            snapshot=snapshot, shared_queries=0, total_queries=int(test.shape[0]), new_mrr=None, champion_mrr=None
        )
    known = kg.known_facts(snapshot)
    mrrs = [
        _mrr(model, shared, known, candidates=champion.num_entities, block_size=block_size, sample=sample)
        for model in (new, champion)
    ]
    result = NewTestSetComparison(
        snapshot=snapshot,
        shared_queries=int(shared.shape[0]),
        total_queries=int(test.shape[0]),
        new_mrr=mrrs[0],
        champion_mrr=mrrs[1],
    )
    logger.info("new test set %d: %s", snapshot, result.to_dict())
    return result
