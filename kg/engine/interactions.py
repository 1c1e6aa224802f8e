"""Interactions: how a (head, relation) pair is turned into a point the tail should be near.

Like PyKEEN, a model is representations plus an interaction. Every interaction maps ``(h, r)`` to a point
``query(h, r)`` in tail space and scores a tail by one of two metrics (:attr:`Interaction.metric`):

- ``l2`` (*translational distance*: ``transe``, ``rotate``): the score of ``t`` is ``-||query(h, r) - t||``;
- ``inner_product`` (*semantic matching*: ``distmult``, ``complex``): the score is ``<query(h, r), t>``.

Either way top-k tails are a FAISS search for ``query(h, r)`` under that metric, and evaluation is one matrix
product per block. The LKGE autoencoder reads ``query(u, r)`` as a reconstruction of the tail for every
interaction (for inner-product ones in the least-squares sense: ``t ~ h * r``), and ``relation_statistics`` /
``aggregate_relation`` give the relation that best explains a set of edges.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch

from evergraph.kg.engine.resolver import Registry

METRIC_NAMES = ("l2", "inner_product")


class Interaction(ABC):
    """Pure functions of embedding tensors; holds no parameters."""

    name: str
    metric: str = "l2"
    """``l2`` (score = minus the L2 distance to ``query``) or ``inner_product`` (score = ``<query, t>``)."""
    penalty_weight: float = 0.0
    """Weight of the N3 penalty on the batch's embeddings (inner-product models; their scores grow unbounded)."""

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

    def relation_statistics(self, head: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
        """What one edge contributes to a relation's reconstruction (summed over edges, then
        :meth:`aggregate_relation`); default: :meth:`relation_features` of :meth:`relation_estimate`."""
        return self.relation_features(self.relation_estimate(head, tail))

    def aggregate_relation(self, summed: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Turn a sum of ``relation_statistics`` values into one relation vector (default: the mean)."""
        return summed / counts.clamp(min=1).unsqueeze(-1)

    def relation_features(self, estimate: torch.Tensor) -> torch.Tensor:
        """What is summed when aggregating relation estimates (default: the estimates themselves)."""
        return estimate

    def relation_gap(self, relation: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
        """Squared distance between relation vectors and their reconstructions (summed over the last dim)."""
        return (relation - estimate).pow(2).sum(-1)

    def score_query(self, query: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
        """Score of ``tail`` for ``query`` (higher is more plausible; broadcasts over leading dims)."""
        if self.metric == "inner_product":
            return (query * tail).sum(-1)
        return -torch.linalg.vector_norm(query - tail, dim=-1)

    def score(self, head: torch.Tensor, relation: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
        """Score of ``(head, relation, tail)`` (higher is more plausible)."""
        return self.score_query(self.query(head, relation), tail)

    def candidate_scores(self, query: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Scores ``[b, n]`` of every row of ``table [n, width]`` for each query ``[b, width]`` (exact)."""
        if self.metric == "inner_product":
            return query @ table.T
        return -torch.cdist(query, table)

    def distance(self, head: torch.Tensor, relation: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
        """Minus the score: the L2 distance for ``l2`` interactions (lower is more plausible)."""
        return -self.score(head, relation, tail)

    def penalty(self, *tensors: torch.Tensor) -> torch.Tensor | None:
        """N3 penalty ``penalty_weight * mean_rows sum |x|^3`` over the given embedding rows, ``None`` when the
        interaction needs none (L2 models)."""
        if self.penalty_weight <= 0:
            return None
        total = sum(x.abs().pow(3).sum(-1).mean() for x in tensors)
        return self.penalty_weight * total


INTERACTIONS: Registry[type[Interaction]] = Registry("model")


def _normal(rows: int, width: int, scale: float, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(rows, width, generator=generator) * (scale / math.sqrt(width))


class _GaussianVectors(Interaction):
    """Entities and relations are ``floats_per_dim * dim`` floats drawn from N(0, scale^2 / width)."""

    floats_per_dim: int = 1

    def entity_width(self, dim: int) -> int:
        return self.floats_per_dim * dim

    def relation_width(self, dim: int) -> int:
        return self.floats_per_dim * dim

    def init_entities(
        self, rows: int, dim: int, *, scale: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return _normal(rows, self.entity_width(dim), scale, generator)

    def init_relations(
        self, rows: int, dim: int, *, scale: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return _normal(rows, self.relation_width(dim), scale, generator)


@INTERACTIONS.register("transe")
class TransE(_GaussianVectors):
    """TransE (Bordes et al. 2013) with the L2 distance: ``t ~ h + r``.

    Entities and relations are ``dim`` floats, initialised N(0, scale^2/dim) so norms start near ``scale``.
    """

    name = "transe"

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


_RIDGE = 1e-3
"""Ridge added per edge to the least-squares relation reconstruction of inner-product models (``t ~ h * r``), so
a relation seen through near-zero heads does not blow up."""


@INTERACTIONS.register("distmult")
class DistMult(_GaussianVectors):
    """DistMult (Yang et al. 2015): ``score = <h * r, t>`` (a diagonal bilinear form; symmetric per relation row,
    the separate inverse rows make ``(h, r, ?)`` and ``(?, r, t)`` differ).

    Entities and relations are ``dim`` floats, N(0, scale^2/dim). ``query(h, r) = h * r``; the relation one edge
    implies is the least-squares ``r`` of ``t ~ h * r``: per coordinate ``sum h t / (sum h^2 + ridge)``.
    """

    name = "distmult"
    metric = "inner_product"
    penalty_weight = 1e-4

    def query(self, head: torch.Tensor, relation: torch.Tensor) -> torch.Tensor:
        return head * relation

    def relation_estimate(self, head: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
        return head * tail / (head * head + _RIDGE)

    def relation_statistics(self, head: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
        return torch.cat([head * tail, head * head], dim=-1)

    def aggregate_relation(self, summed: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        cross, square = summed.chunk(2, dim=-1)
        return cross / (square + _RIDGE * counts.clamp(min=1).unsqueeze(-1))


@INTERACTIONS.register("complex")
class ComplEx(_GaussianVectors):
    """ComplEx (Trouillon et al. 2016): ``score = Re(<h, r, conj(t)>)``, i.e. the inner product of the complex
    product ``h * r`` with ``t``, both real-flattened (real parts, then imaginary parts).

    Entities and relations are ``2 * dim`` floats. The relation one edge implies is the complex least-squares
    ``r`` of ``t ~ h * r``: ``sum conj(h) t / (sum |h|^2 + ridge)``.
    """

    name = "complex"
    metric = "inner_product"
    penalty_weight = 1e-4
    floats_per_dim = 2

    def query(self, head: torch.Tensor, relation: torch.Tensor) -> torch.Tensor:
        hr, hi = head.chunk(2, dim=-1)
        rr, ri = relation.chunk(2, dim=-1)
        return torch.cat([hr * rr - hi * ri, hr * ri + hi * rr], dim=-1)

    @staticmethod
    def _cross(head: torch.Tensor, tail: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hr, hi = head.chunk(2, dim=-1)
        tr, ti = tail.chunk(2, dim=-1)
        # conj(h) * t and |h|^2
        return hr * tr + hi * ti, hr * ti - hi * tr, hr * hr + hi * hi

    def relation_estimate(self, head: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
        re, im, square = self._cross(head, tail)
        return torch.cat([re, im], dim=-1) / (square + _RIDGE).repeat(*([1] * (square.dim() - 1)), 2)

    def relation_statistics(self, head: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
        return torch.cat(self._cross(head, tail), dim=-1)

    def aggregate_relation(self, summed: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        width = summed.shape[-1] // 3
        re, im, square = summed[..., :width], summed[..., width : 2 * width], summed[..., 2 * width :]
        square = square + _RIDGE * counts.clamp(min=1).unsqueeze(-1)
        return torch.cat([re / square, im / square], dim=-1)


def get_interaction(name: str) -> Interaction:
    """The interaction registered under ``name`` (``transe``, ``rotate``, ``distmult`` or ``complex``)."""
    return INTERACTIONS.get(name)()
