"""An embedding model: entity and relation tables plus an interaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from evergraph.kg.engine.interactions import Interaction, get_interaction
from evergraph.kg.engine.sparse import GatheredRows


def model_relation_ids(relations: torch.Tensor, *, inverse: bool = False) -> torch.Tensor:
    """Model id of base relation ``r``: ``2r`` (forward) or ``2r + 1`` (inverse). Interleaving keeps ids stable
    when new relations are appended."""
    return relations * 2 + int(inverse)


def doubled_triples(triples: torch.Tensor) -> torch.Tensor:
    """``(h, r, t)`` base-id triples -> forward ``(h, 2r, t)`` and inverse ``(t, 2r+1, h)`` model-id triples."""
    h, r, t = triples.unbind(1)
    forward = torch.stack([h, model_relation_ids(r), t], dim=1)
    inverse = torch.stack([t, model_relation_ids(r, inverse=True), h], dim=1)
    return torch.cat([forward, inverse])


class KGEModel(nn.Module):
    """Entity table ``[num_entities, entity_width]``, relation table ``[2 * num_relations, relation_width]``
    (every relation has an inverse, see :func:`model_relation_ids`) and an :class:`Interaction`.

    Tables only ever grow (:meth:`grow`); a row, once given to an id, belongs to it.
    """

    def __init__(
        self,
        *,
        interaction: str = "transe",
        num_entities: int = 0,
        num_relations: int = 0,
        dim: int = 200,
        init_scale: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.interaction_name = interaction
        self.interaction: Interaction = get_interaction(interaction)
        self.dim = dim
        self.init_scale = init_scale
        self._gathered: GatheredRows | None = None  # see sparse_rows(); never saved, None outside a sparse step
        self.entity = nn.Parameter(self.random_entities(num_entities, generator=generator))
        self.relation = nn.Parameter(self.random_relations(2 * num_relations, generator=generator))

    @property
    def num_entities(self) -> int:
        return self.entity.shape[0]

    @property
    def num_relations(self) -> int:
        """Number of base relations (the table holds twice as many rows)."""
        return self.relation.shape[0] // 2

    @property
    def device(self) -> torch.device:
        return self.entity.device if hasattr(self, "entity") else torch.device("cpu")

    def random_entities(self, rows: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        rows_ = self.interaction.init_entities(rows, self.dim, scale=self.init_scale, generator=generator)
        return rows_.to(self.device)

    def random_relations(self, rows: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        rows_ = self.interaction.init_relations(rows, self.dim, scale=self.init_scale, generator=generator)
        return rows_.to(self.device)

    @torch.no_grad()
    def grow(
        self,
        *,
        num_entities: int,
        num_relations: int,
        new_entities: torch.Tensor | None = None,
        new_relations: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        """Append rows for new ids. ``new_entities``/``new_relations`` give their initial values (e.g. from
        embedding transfer); random when ``None``. Shrinking is an error: ids are append-only."""
        add_e = num_entities - self.num_entities
        add_r = 2 * (num_relations - self.num_relations)
        if add_e < 0 or add_r < 0:
            raise ValueError("a model can only grow: ids are append-only")
        if add_e:
            rows = new_entities if new_entities is not None else self.random_entities(add_e, generator=generator)
            self.entity = nn.Parameter(torch.cat([self.entity.data, rows.to(self.entity)]))
        if add_r:
            rows = new_relations if new_relations is not None else self.random_relations(add_r, generator=generator)
            self.relation = nn.Parameter(torch.cat([self.relation.data, rows.to(self.relation)]))

    @property
    def sparse_gradients(self) -> bool:
        """Whether rows are being gathered for a sparse step (inside :meth:`sparse_rows`)."""
        return self._gathered is not None

    def entity_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """Entity vectors for an id tensor of any shape (``index_select``: its backward is a fast ``index_add``,
        unlike advanced indexing's serial ``index_put``). Inside :meth:`sparse_rows` the rows are gathered for a
        sparse gradient instead."""
        if self._gathered is not None:
            return self._gathered.entity.gather(ids)
        return self.entity.index_select(0, ids.reshape(-1)).view(*ids.shape, -1)

    def relation_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """Relation vectors for an id tensor of any shape (model relation ids); inside :meth:`sparse_rows`
        gathered for a sparse gradient likewise."""
        if self._gathered is not None:
            return self._gathered.relation.gather(ids)
        return self.relation.index_select(0, ids.reshape(-1)).view(*ids.shape, -1)

    @contextmanager
    def sparse_rows(self, enabled: bool = True) -> Iterator[GatheredRows | None]:
        """Within the block (when ``enabled``), :meth:`entity_rows` and :meth:`relation_rows` gather rows as
        leaves of their own (:class:`evergraph.kg.engine.sparse.GatheredRows`, yielded); after ``backward``,
        its ``assign_gradients()`` sets each table's gradient to a sparse one over the rows gathered, so a step
        touches only those rows (the sparse training path). Yields ``None`` when not ``enabled``."""
        if not enabled:
            yield None
            return
        before, self._gathered = self._gathered, GatheredRows(entity=self.entity, relation=self.relation)
        try:
            yield self._gathered
        finally:
            self._gathered = before

    def distance(self, triples: torch.Tensor) -> torch.Tensor:
        """Distance of model-id triples ``[n, 3]`` (minus :meth:`score`; lower is more plausible)."""
        return -self.score(triples)

    def score(self, triples: torch.Tensor) -> torch.Tensor:
        """Score of model-id triples ``[n, 3]`` (higher is more plausible; the interaction's metric)."""
        h, r, t = triples.unbind(1)
        return self.interaction.score(self.entity_rows(h), self.relation_rows(r), self.entity_rows(t))

    def query(self, entities: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """``query(e, r)`` vectors for model relation ids: the point answers should be near."""
        return self.interaction.query(self.entity_rows(entities), self.relation_rows(relations))

    def score_fn(self) -> Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]:
        """A scorer for evaluation (a :data:`evergraph.kg.engine.evaluation.ScoreFn`): ``score(e, r, n)`` -> ``[b,
        n]``, higher is better.

        L2 interactions use ``-||q - t||^2 + ||q||^2 = 2 q.t - ||t||^2`` (same ranking as the distance; one
        ``addmm``); inner-product ones score ``q.t``. Entity norms are computed once per call of this method, so
        call it again after training.
        """
        entity = self.entity.detach()
        inner = self.interaction.metric == "inner_product"
        norms = entity.pow(2).sum(1)

        def score(entities: torch.Tensor, relations: torch.Tensor, num_candidates: int) -> torch.Tensor:
            entities, relations = entities.to(entity.device), relations.to(entity.device)
            q = self.interaction.query(entity[entities], self.relation.detach()[relations])
            if inner:
                return q @ entity[:num_candidates].T
            return torch.addmm(norms[:num_candidates].neg(), q, entity[:num_candidates].T, alpha=2.0)

        return score

    def candidate_score_fn(self) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
        """A scorer of chosen candidates (a :data:`evergraph.kg.engine.evaluation.CandidateScoreFn`): ``score(e, r,
        candidates [b, k])`` -> ``[b, k]``, the same ranking as :meth:`score_fn` (``2 q.t - ||t||^2`` for L2,
        ``q.t`` for inner products) but only for the ``k`` candidates of each query (sampled evaluation)."""
        entity = self.entity.detach()
        inner = self.interaction.metric == "inner_product"
        norms = entity.pow(2).sum(1)

        def score(entities: torch.Tensor, relations: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
            entities, relations = entities.to(entity.device), relations.to(entity.device)
            q = self.interaction.query(entity[entities], self.relation.detach()[relations])
            flat = candidates.reshape(-1).to(entity.device)
            tails = entity.index_select(0, flat).view(*candidates.shape, -1)  # much faster than entity[candidates]
            dots = torch.bmm(tails, q.unsqueeze(2)).squeeze(2)
            if inner:
                return dots
            return 2.0 * dots - norms.index_select(0, flat).view(candidates.shape)

        return score
