"""Compare two model versions on the newest test set, on equal terms, for the promotion gate.

The champion was trained before the newest snapshot arrived, so it cannot score facts about entities or
relations that appeared later. The fair comparison is on the part of the newest test set the champion *can*
score: test triples whose head, relation and tail all existed in the champion's vocabulary, ranked against
the champion's entities (ids ``0..E_champion-1``, a prefix of the newer vocabulary because ids are
append-only), filtered by every fact known up to the newest snapshot. Both versions are ranked on exactly those
queries, those candidates and that filter, so their MRRs are comparable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from kg.evaluation import RankingMetrics, filtered_ranks
from kg.ingest import GrowingKG
from kg.model import KGEModel

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


@torch.inference_mode()
def compare_on_new_test_set(
    *, new: KGEModel, champion: KGEModel, kg: GrowingKG, snapshot: int, block_size: int = 2048
) -> NewTestSetComparison:
    """Rank the test triples of ``snapshot`` that ``champion`` knows with both models (see the module doc).

    ``kg`` must hold snapshots up to ``snapshot``; ``champion`` must be an earlier version of ``new``'s lineage
    (its ids a prefix of ``new``'s). ``block_size`` (default 2048) queries are scored at a time.
    """
    if champion.num_entities > new.num_entities or champion.num_relations > new.num_relations:
        raise ValueError(
            f"the champion knows more entities/relations ({champion.num_entities}/{champion.num_relations}) than "
            f"the new version ({new.num_entities}/{new.num_relations}); it is not an earlier version of it"
        )
    test = kg.snapshots[snapshot].test.reshape(-1, 3).long().cpu()
    shared = test[
        (test[:, 0] < champion.num_entities)
        & (test[:, 2] < champion.num_entities)
        & (test[:, 1] < champion.num_relations)
    ]
    if shared.shape[0] == 0:
        logger.info("no test triple of snapshot %d is known to the champion; nothing to compare", snapshot)
        return NewTestSetComparison(
            snapshot=snapshot, shared_queries=0, total_queries=int(test.shape[0]), new_mrr=None, champion_mrr=None
        )
    known = kg.known_facts(snapshot)
    mrrs = []
    for model in (new, champion):
        ranks = filtered_ranks(
            score_fn=model.score_fn(),
            triples=shared,
            known=known,
            num_candidates=champion.num_entities,
            block_size=block_size,
        )
        mrrs.append(RankingMetrics.from_ranks(ranks.realistic).mrr)
    result = NewTestSetComparison(
        snapshot=snapshot,
        shared_queries=int(shared.shape[0]),
        total_queries=int(test.shape[0]),
        new_mrr=mrrs[0],
        champion_mrr=mrrs[1],
    )
    logger.info("new test set %d: %s", snapshot, result.to_dict())
    return result
