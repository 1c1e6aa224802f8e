"""The known facts of a serving bundle, with fast lookups by entity and by (entity, relation).

A :class:`FactTable` holds facts as ``LongTensor[n, 4]`` rows ``(head, relation, tail, snapshot)`` (base relation
ids, as in the vocabularies; ``snapshot`` is where the fact arrived). For lookups every fact is also seen from its
tail through the inverse relation, in the model's id convention (:func:`evergraph.kg.engine.model.model_relation_ids`:
``2r`` forward, ``2r + 1`` inverse), and the doubled rows are sorted once by ``(entity, model relation, other)``: the
facts about an entity, and the known answers of a query ``(entity, model relation, ?)``, are then contiguous
ranges found by binary search (CSR). Building it for 300k facts takes well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from evergraph.kg.errors import FactTableError

__all__ = ["FactTable", "FactTableError", "ResolvedFact"]


@dataclass(frozen=True, slots=True)
class ResolvedFact:
    """One known fact seen from an entity: ``fact`` is its row in the table, ``relation`` a model relation id
    (odd: the entity is the fact's tail), ``other`` the entity at the other end."""

    fact: int
    relation: int
    other: int


class FactTable:
    """Known facts ``[n, 4]`` of ``(head, relation, tail, snapshot)`` for ``num_entities`` entities and
    ``num_relations`` base relations; ids out of range are a :class:`FactTableError`."""

    def __init__(self, facts: torch.Tensor, *, num_entities: int, num_relations: int) -> None:
        facts = torch.as_tensor(facts, dtype=torch.long).cpu()
        if facts.numel() == 0:
            facts = facts.reshape(0, 4)
        if facts.dim() != 2 or facts.shape[1] != 4:
            raise FactTableError(f"facts must be [n, 4] (head, relation, tail, snapshot), got {tuple(facts.shape)}")
        if len(facts):
            h, r, t, s = facts.unbind(1)
            bad = (h < 0) | (h >= num_entities) | (t < 0) | (t >= num_entities) | (r < 0) | (r >= num_relations)
            if bool(bad.any()) or bool((s < 0).any()):
                row = int(bad.nonzero()[0]) if bool(bad.any()) else int((s < 0).nonzero()[0])
                raise FactTableError(
                    f"fact {row} {facts[row].tolist()} is outside {num_entities} entities x {num_relations} relations"
                )
        self.facts = facts
        self.num_entities = int(num_entities)
        self.num_relations = int(num_relations)
        n = len(facts)
        rows = torch.arange(n)
        entity = torch.cat([facts[:, 0], facts[:, 2]])
        relation = torch.cat([2 * facts[:, 1], 2 * facts[:, 1] + 1])
        other = torch.cat([facts[:, 2], facts[:, 0]])
        fact = torch.cat([rows, rows])
        width = 2 * self.num_relations
        key = (entity * width + relation) * self.num_entities + other
        order = torch.argsort(key, stable=True)
        self._key = key[order]
        self._entity = entity[order]
        self._relation = relation[order]
        self._other = other[order]
        self._fact = fact[order]
        self._width = width

    def __len__(self) -> int:
        return len(self.facts)

    def __repr__(self) -> str:
        return f"FactTable({len(self)} facts, {self.num_entities} entities, {self.num_relations} relations)"

    def _range(self, low: int, high: int) -> tuple[int, int]:
        """Rows of the sorted doubled table whose key lies in ``[low, high)``."""
        bounds = torch.searchsorted(self._key, torch.tensor([low, high]))
        return int(bounds[0]), int(bounds[1])

    def _check_entity(self, entity: int) -> None:
        if not 0 <= entity < self.num_entities:
            raise FactTableError(f"entity id {entity} is outside 0..{self.num_entities - 1}")

    def about(self, entity: int) -> list[ResolvedFact]:
        """Every fact with ``entity`` as head or tail, seen from it, ordered by model relation then other end."""
        fact, relation, other = self.about_arrays(entity)
        return [ResolvedFact(f, r, o) for f, r, o in zip(fact.tolist(), relation.tolist(), other.tolist(), strict=True)]

    def about_arrays(self, entity: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`about` as three ``LongTensor`` views ``(fact rows, model relations, other ends)``."""
        self._check_entity(entity)
        span = self._width * self.num_entities
        begin, end = self._range(entity * span, (entity + 1) * span)
        return self._fact[begin:end], self._relation[begin:end], self._other[begin:end]

    def degree(self, entity: int) -> int:
        """How many facts ``entity`` takes part in (as head or tail)."""
        return len(self.about_arrays(entity)[0])

    def answers(self, entity: int, relation: int) -> torch.Tensor:
        """Known answers of ``(entity, relation, ?)`` for a *model* relation id (``2r``: tails of
        ``(entity, r, ?)``; ``2r + 1``: heads of ``(?, r, entity)``), as a sorted ``LongTensor``."""
        self._check_entity(entity)
        if not 0 <= relation < self._width:
            raise FactTableError(f"model relation id {relation} is outside 0..{self._width - 1}")
        base = (entity * self._width + relation) * self.num_entities
        begin, end = self._range(base, base + self.num_entities)
        return self._other[begin:end]

    def answers_many(self, entities: torch.Tensor, relations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`answers` of many queries at once (``entities``/``relations`` ``[b]``, model relation ids):
        ``(query, answer)``, two ``LongTensor`` of equal length, one pair per known answer of ``query`` (queries in
        order, each one's answers sorted). Vectorised: two binary searches per query."""
        entities, relations = (
            torch.as_tensor(entities).long().reshape(-1),
            torch.as_tensor(relations).long().reshape(-1),
        )
        low = (entities * self._width + relations) * self.num_entities
        begin = torch.searchsorted(self._key, low)
        counts = torch.searchsorted(self._key, low + self.num_entities) - begin
        query = torch.repeat_interleave(torch.arange(len(entities)), counts)
        starts = torch.repeat_interleave(begin - (torch.cumsum(counts, 0) - counts), counts)
        return query, self._other[starts + torch.arange(len(query))]

    def has_answers(self, entities: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """Bool tensor of ``entities``' shape: whether ``(entities[i], relations[i], ?)`` (model relation ids,
        same shape) has a known answer. Vectorised: two binary searches per query (:meth:`answer_counts`)."""
        return self.answer_counts(entities, relations) > 0

    def contains(self, head: int, relation: int, tail: int) -> bool:
        """Whether ``(head, relation, tail)`` (base relation id) is a known fact."""
        if not (0 <= head < self.num_entities and 0 <= tail < self.num_entities and 0 <= relation < self.num_relations):
            return False
        key = (head * self._width + 2 * relation) * self.num_entities + tail
        begin, end = self._range(key, key + 1)
        return end > begin

    def contains_many(self, triples: torch.Tensor) -> torch.Tensor:
        """Bool ``[n]``: :meth:`contains` of each ``(head, relation, tail)`` row of ``triples`` ``[n, 3]`` (base
        relation ids; rows with an id out of range are not known). Vectorised: two binary searches per row."""
        triples = torch.as_tensor(triples, dtype=torch.long).reshape(-1, 3)
        h, r, t = triples.unbind(1)
        inside = (h >= 0) & (h < self.num_entities) & (t >= 0) & (t < self.num_entities)
        inside &= (r >= 0) & (r < self.num_relations)
        key = (h.clamp(min=0) * self._width + 2 * r.clamp(min=0)) * self.num_entities + t.clamp(min=0)
        found = torch.searchsorted(self._key, key + 1) > torch.searchsorted(self._key, key)
        return found & inside

    def answer_counts(self, entities: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """How many known answers ``(entities[i], relations[i], ?)`` has (model relation ids, same shape)."""
        entities, relations = torch.as_tensor(entities).long(), torch.as_tensor(relations).long()
        low = ((entities * self._width + relations) * self.num_entities).reshape(-1)
        counts = torch.searchsorted(self._key, low + self.num_entities) - torch.searchsorted(self._key, low)
        return counts.reshape(entities.shape)

    def snapshot_of(self, fact: int) -> int:
        """The snapshot fact row ``fact`` arrived in."""
        return int(self.facts[fact, 3])
