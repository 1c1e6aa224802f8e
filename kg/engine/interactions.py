"""Interactions: how a (head, relation) pair is turned into a point the tail should be near.

Like PyKEEN, a model is representations plus an interaction. Every interaction here is a *translational
distance* model: ``query(h, r)`` maps the head into tail space and the score of ``t`` is minus the L2 distance
``||query(h, r) - t||``. That is what makes FAISS usable later (L2 search for ``query(h, r)``) and evaluation
one matrix product per block.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch

from evergraph.kg.engine.resolver import Registry


class Interaction(ABC):
    """Pure functions of embedding tensors; holds no parameters."""

    name: str

    @abstractmethod
    def entity_width(self, dim: int) -> int:
        """Number of floats stored per entity for embedding dimension ``dim``."""

    @abstractmethod
    def relation_width(self, dim: int) -> int:
        """Number of floats stored per relation for embedding dimension ``dim``."""

    @abstractmethod
    def init_entities(
        self, rows: int, dim: int, *, scale: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Random initial entity vectors with norms near ``scale``."""

    @abstractmethod
    def init_relations(
        self, rows: int, dim: int, *, scale: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Random initial relation vectors (norms near ``scale`` where that means something)."""

    @abstractmethod
    def query(self, head: torch.Tensor, relation: torch.Tensor) -> torch.Tensor:
        """Where the tail of ``(head, relation, ?)`` should be (broadcasts over leading dims)."""

    @abstractmethod
    def relation_estimate(self, head: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
        """The relation vector one edge ``head -> tail`` implies (used to reconstruct relations)."""

    def aggregate_relation(self, summed: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Turn a sum of ``relation_estimate`` values into one relation vector (default: the mean)."""
        return summed / counts.clamp(min=1).unsqueeze(-1)

    def relation_features(self, estimate: torch.Tensor) -> torch.Tensor:
        """What is summed when aggregating relation estimates (default: the estimates themselves)."""
        return estimate

    def relation_gap(self, relation: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
        """Squared distance between relation vectors and their reconstructions (summed over the last dim)."""
        return (relation - estimate).pow(2).sum(-1)

    def distance(self, head: torch.Tensor, relation: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
        """L2 distance between ``query(head, relation)`` and ``tail`` (lower is more plausible)."""
        return torch.linalg.vector_norm(self.query(head, relation) - tail, dim=-1)


INTERACTIONS: Registry[type[Interaction]] = Registry("model")


def _normal(rows: int, width: int, scale: float, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(rows, width, generator=generator) * (scale / math.sqrt(width))


@INTERACTIONS.register("transe")
class TransE(Interaction):
    """TransE (Bordes et al. 2013) with the L2 distance: ``t ~ h + r``.

    Entities and relations are ``dim`` floats, initialised N(0, scale^2/dim) so norms start near ``scale``.
    """

    name = "transe"

    def entity_width(self, dim: int) -> int:
        return dim

    def relation_width(self, dim: int) -> int:
        return dim

    def init_entities(
        self, rows: int, dim: int, *, scale: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return _normal(rows, dim, scale, generator)

    def init_relations(
        self, rows: int, dim: int, *, scale: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return _normal(rows, dim, scale, generator)

    def query(self, head: torch.Tensor, relation: torch.Tensor) -> torch.Tensor:
        return head + relation

    def relation_estimate(self, head: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
        return tail - head


@INTERACTIONS.register("rotate")
class RotatE(Interaction):
    """RotatE (Sun et al. 2019): ``t ~ h * exp(i theta)``, a rotation in complex space.

    An entity is ``2 * dim`` floats (real parts, then imaginary parts); a relation is ``dim`` phases,
    initialised uniformly in [-pi, pi). The distance is L2 over the real-flattened complex vector.
    """

    name = "rotate"

    def entity_width(self, dim: int) -> int:
        return 2 * dim

    def relation_width(self, dim: int) -> int:
        return dim

    def init_entities(
        self, rows: int, dim: int, *, scale: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return _normal(rows, 2 * dim, scale, generator)

    def init_relations(
        self, rows: int, dim: int, *, scale: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return (torch.rand(rows, dim, generator=generator) * 2 - 1) * math.pi

    def query(self, head: torch.Tensor, relation: torch.Tensor) -> torch.Tensor:
        re, im = head.chunk(2, dim=-1)
        cos, sin = torch.cos(relation), torch.sin(relation)
        return torch.cat([re * cos - im * sin, re * sin + im * cos], dim=-1)

    def relation_estimate(self, head: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
        hr, hi = head.chunk(2, dim=-1)
        tr, ti = tail.chunk(2, dim=-1)
        # phase of t * conj(h)
        return torch.atan2(ti * hr - tr * hi, tr * hr + ti * hi)

    def relation_features(self, estimate: torch.Tensor) -> torch.Tensor:
        # phases are averaged on the circle: sum unit vectors, take the angle
        return torch.cat([torch.cos(estimate), torch.sin(estimate)], dim=-1)

    def aggregate_relation(self, summed: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        cos, sin = summed.chunk(2, dim=-1)
        return torch.atan2(sin, cos)

    def relation_gap(self, relation: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
        # squared chord between the two unit rotations: no jump at +-pi
        return (2 - 2 * torch.cos(relation - estimate)).sum(-1)


def get_interaction(name: str) -> Interaction:
    """The interaction registered under ``name`` (``transe`` or ``rotate``)."""
    return INTERACTIONS.get(name)()
