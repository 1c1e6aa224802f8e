"""Entity types as the known facts show them: the domain and range of every relation, with no type labels.

A knowledge graph rarely says "Lyon is a city", but its facts do: an entity's *roles* are the positions it takes in
known facts (head of ``located_in``, tail of ``born_in``, ...; role ``2r`` is the head of base relation ``r``,
``2r + 1`` its tail: the model's relation-id convention, :func:`evergraph.kg.engine.model.model_relation_ids`).
The range of a query ``(e, rho, ?)`` (a model relation id) is the set of entities with role ``rho ^ 1``: those seen
answering it. For every pair of roles the table keeps the share of entities with the first that also have the
second, so an entity never seen answering ``rho`` still *fits* when it plays a role that the range's entities
typically play (a new city that nobody was born in yet still fits ``born_in``'s tail: most tails of ``born_in``
are heads of ``located_in``, and so is it).

``fit(a, rho)`` is the largest such share over ``a``'s roles (1 when ``a`` was seen answering ``rho``, 0 when
it plays no role of the range's entities, e.g. a person as the tail of ``located_in``). An answer fits when
``fit >= min_share`` (default 0.2). Entities without any known fact fit nothing.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from evergraph.kg.store.facts import FactTable

__all__ = ["DEFAULT_MIN_SHARE", "RoleTypes", "role_types"]

DEFAULT_MIN_SHARE = 0.2
"""An answer fits a relation's range when at least this share of the range's entities play one of its roles."""

_CACHE: weakref.WeakKeyDictionary[FactTable, RoleTypes] = weakref.WeakKeyDictionary()


class RoleTypes:
    """Roles ``[num_entities, 2 * num_relations]`` (bool) and the role co-occurrence shares of a fact table.

    ``share[a, b]`` is the share of entities with role ``a`` that also have role ``b`` (``share[a, a] = 1`` for a
    role anybody has). Build with :func:`role_types` (cached per fact table)."""

    def __init__(self, facts: torch.Tensor, *, num_entities: int, num_relations: int) -> None:
        facts = torch.as_tensor(facts, dtype=torch.long)
        facts = facts.reshape(0, 3) if facts.numel() == 0 else facts
        width = 2 * num_relations
        roles = torch.zeros(num_entities, width, dtype=torch.bool)
        if len(facts):
            roles[facts[:, 0], 2 * facts[:, 1]] = True
            roles[facts[:, 2], 2 * facts[:, 1] + 1] = True
        self.roles = roles
        self.num_relations = num_relations
        dense = roles.float()
        together = dense.T @ dense  # [width, width]: entities with both roles
        count = together.diagonal().clamp(min=1)
        self.share = together / count.unsqueeze(1)

    def fit(self, answers: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """``fit`` (module docstring) of each answer ``answers[...]`` for model relation ``relations[...]`` (same
        shape or broadcastable); ``-1`` answers get 0."""
        answers, relations = torch.broadcast_tensors(torch.as_tensor(answers).long(), torch.as_tensor(relations).long())
        valid = answers >= 0
        roles = self.roles[answers.clamp(min=0)].float()  # [..., width]
        profile = self.share[relations ^ 1]  # [..., width]: how typical each role is in the range
        return (roles * profile).amax(-1).masked_fill(~valid, 0.0)

    def fits(
        self, answers: torch.Tensor, relations: torch.Tensor, *, min_share: float = DEFAULT_MIN_SHARE
    ) -> torch.Tensor:
        """Bool: whether each answer fits the range of its model relation (``fit >= min_share``)."""
        return self.fit(answers, relations) >= min_share

    def fits_triple(self, head: int, relation: int, tail: int, *, min_share: float = DEFAULT_MIN_SHARE) -> bool:
        """Whether ``(head, relation, tail)`` (base relation id) fits both the domain and the range."""
        found = self.fit(torch.tensor([tail, head]), torch.tensor([2 * relation, 2 * relation + 1]))
        return bool((found >= min_share).all())

    def fits_side(self, entity: int, relation: int, *, head: bool, min_share: float = DEFAULT_MIN_SHARE) -> bool:
        """Whether ``entity`` fits the domain (``head=True``) or range of base relation ``relation``."""
        found = self.fit(torch.tensor([entity]), torch.tensor([2 * relation + int(head)]))
        return bool(found[0] >= min_share)

    def seen_in_position(self, answers: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """Bool: whether each answer was seen answering its model relation (the range, strictly)."""
        answers, relations = torch.broadcast_tensors(torch.as_tensor(answers).long(), torch.as_tensor(relations).long())
        return self.roles[answers.clamp(min=0), relations ^ 1] & (answers >= 0)


def role_types(facts: FactTable) -> RoleTypes:
    """The :class:`RoleTypes` of ``facts`` (computed once per fact table, then cached)."""
    found = _CACHE.get(facts)
    if found is None:
        found = RoleTypes(facts.facts[:, :3], num_entities=facts.num_entities, num_relations=facts.num_relations)
        _CACHE[facts] = found
    return found
