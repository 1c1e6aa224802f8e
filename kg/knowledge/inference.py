"""Inferred facts: filtered link prediction through a bundle's FAISS index, with calibrated confidence.

For a query ``(entity, relation, ?)`` (a *model* relation id: ``2r`` asks for tails of ``(entity, r, ?)``,
``2r + 1`` for heads of ``(?, r, entity)``) the bundle's entity index is searched for the ``k + a + 1`` nearest
answers, where ``a`` is the number of answers the graph already knows; those known answers and the entity itself
are dropped, so exactly the top ``k`` *new* answers remain (for an exact ``Flat`` index this equals brute force,
:func:`evergraph.kg.store.calibration.filtered_top_k`). An inferred fact therefore never repeats a known one. Each
answer gets the bundle's calibrated confidence (:mod:`evergraph.kg.store.calibration`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from evergraph.kg.errors import InvalidQueryError
from evergraph.kg.knowledge.types import role_types
from evergraph.kg.store.calibration import filtered_top_k, roles

if TYPE_CHECKING:
    from evergraph.kg.store.bundle import Bundle

__all__ = ["Inferred", "infer"]

_GPU_MAX_K = 2048
_TYPED_POOL = 5  # typed inference looks at this many times k candidates before dropping the misfits


def _typed(
    bundle: Bundle,
    entities: torch.Tensor,
    relations: torch.Tensor,
    scores: torch.Tensor,
    ids: torch.Tensor,
    *,
    k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The best ``k`` candidates of each row that fit the range of its relation, none when the query entity does
    not fit its domain (:mod:`evergraph.kg.knowledge.types`)."""
    types = role_types(bundle.facts)
    fits = types.fits(ids, relations.unsqueeze(1)) & (ids >= 0) & types.fits(entities, relations ^ 1).unsqueeze(1)
    out_scores = torch.full((len(ids), k), float("-inf"))
    out_ids = torch.full((len(ids), k), -1, dtype=torch.long)
    for i in range(len(ids)):
        keep = fits[i].nonzero().flatten()[:k]
        out_scores[i, : len(keep)] = scores[i, keep]
        out_ids[i, : len(keep)] = ids[i, keep]
    return out_scores, out_ids


@dataclass(frozen=True, slots=True)
class Inferred:
    """One inferred answer of a query: ``entity`` (query entity id), ``relation`` (model relation id),
    ``answer`` (entity id), ``score`` (minus the embedding distance) and ``confidence`` in ``[0, 1]``."""

    entity: int
    relation: int
    answer: int
    score: float
    confidence: float

    @property
    def triple(self) -> tuple[int, int, int]:
        """The fact as ``(head, base relation, tail)``."""
        base = self.relation // 2
        if self.relation % 2:
            return (self.answer, base, self.entity)
        return (self.entity, base, self.answer)


def _withheld(bundle: Bundle, entity: int, relation: int, known: torch.Tensor) -> torch.Tensor:
    """The answers never offered for a query: known ones, retracted ones and retired entities (a retraction is a
    human decision: the model may still rank a retracted fact high, it is not offered)."""
    retracted = bundle.retracted_answers(entity, relation)
    if not len(retracted) and not len(bundle.retired):
        return known
    return torch.cat([known, retracted, bundle.retired])


@torch.no_grad()
def infer(
    bundle: Bundle, entities: list[int], relations: list[int], *, k: int = 10, typed: bool = False
) -> list[list[Inferred]]:
    """The top ``k`` (default 10) new answers of each query ``(entities[i], relations[i], ?)``, best first.

    Relations are model ids (see the module docstring). Returns one list per query (shorter when the graph has
    fewer than ``k`` candidates left). ``typed=True`` (default ``False``) drops answers that do not fit the
    relation's range as the known facts show it, from a pool of ``5 * k`` candidates, and answers nothing when the
    query entity does not fit the relation's domain (:mod:`evergraph.kg.knowledge.types`).
    """
    if not entities:
        return []
    if k < 1:
        raise InvalidQueryError(f"k must be at least 1, got {k}")
    e = torch.tensor(entities, dtype=torch.long)
    r = torch.tensor(relations, dtype=torch.long)
    known = [bundle.facts.answers(a, b) for a, b in zip(entities, relations, strict=True)]
    known = [_withheld(bundle, a, b, x) for a, b, x in zip(entities, relations, known, strict=True)]
    pool = k * _TYPED_POOL if typed else k
    wanted = min(pool + max(len(x) for x in known) + 1, bundle.model.num_entities)
    if bundle.index.on_gpu and wanted > _GPU_MAX_K:
        scores, ids = filtered_top_k(bundle.model, bundle.facts, e, r, k=pool)  # beyond FAISS-GPU's k: exact
        for i, withheld in enumerate(known):  # filtered_top_k drops known facts; retracted/retired too
            drop = torch.isin(ids[i], withheld)
            ids[i, drop], scores[i, drop] = -1, float("-inf")
    else:
        raw_scores, raw_ids = bundle.index.predict_tails(bundle.model, e, r, k=wanted)
        scores = torch.full((len(entities), pool), float("-inf"))
        ids = torch.full((len(entities), pool), -1, dtype=torch.long)
        for i, (entity, answers) in enumerate(zip(entities, known, strict=True)):
            drop = torch.isin(raw_ids[i], answers) | (raw_ids[i] == entity) | (raw_ids[i] < 0)
            keep = (~drop).nonzero().flatten()[:pool]
            scores[i, : len(keep)] = raw_scores[i, keep]
            ids[i, : len(keep)] = raw_ids[i, keep]
    if typed:
        scores, ids = _typed(bundle, e, r, scores, ids, k=k)
    confidence = bundle.calibration.confidence(scores, *roles(bundle.facts, e, r, ids))
    results: list[list[Inferred]] = []
    for i in range(len(entities)):
        if len(bundle.retired) and bundle.is_retired(entities[i]):
            results.append([])  # a retired entity is not predicted
            continue
        row = [
            Inferred(entities[i], relations[i], int(a), float(s), float(c))
            for a, s, c in zip(ids[i].tolist(), scores[i].tolist(), confidence[i].tolist(), strict=True)
            if a >= 0
        ]
        results.append(row)
    return results
