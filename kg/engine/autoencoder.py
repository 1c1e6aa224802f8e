"""The masked KG autoencoder of LKGE (Cui et al., AAAI 2023), written from the paper.

An entity's embedding is reconstructed from its neighbourhood only: for entity ``e`` the mean of
``query(u, r)`` over its incoming edges ``u -r-> e`` (inverse edges included, as every fact also exists as
``(t, r^-1, h)``). The entity's own vector is *masked*: self-loops ``e -r-> e`` are dropped, so nothing of ``e``
leaks into its reconstruction (the reference code keeps a self-loop; we do not). A relation is reconstructed
as the aggregate of ``relation_estimate(h, t)`` (``t - h`` for TransE) over its edges. For the inner-product
interactions (DistMult, ComplEx) ``query(u, r) = u * r`` is read as a reconstruction of the tail in the
least-squares sense, and a relation is the least-squares ``r`` of ``t ~ h * r`` over its edges
(:meth:`~evergraph.kg.engine.interactions.Interaction.relation_statistics`), so every registered interaction has
an autoencoder and transfer.

The same reconstruction initialises new entities and relations from known neighbours (embedding transfer).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch_geometric.nn import MessagePassing

from evergraph.kg.engine.interactions import Interaction
from evergraph.kg.engine.model import KGEModel, doubled_triples


@dataclass
class NeighbourhoodGraph:
    """Edges ``src -rel-> dst`` (model relation ids, inverse edges included, self-loops masked out),
    sorted by ``dst`` with CSR offsets ``rowptr`` so a node's incoming edges are ``rowptr[v]:rowptr[v+1]``."""

    src: torch.Tensor
    rel: torch.Tensor
    dst: torch.Tensor
    rowptr: torch.Tensor

    @classmethod
    def from_triples(cls, triples: torch.Tensor, *, num_entities: int) -> NeighbourhoodGraph:
        """Build from base-id ``(h, r, t)`` triples."""
        edges = doubled_triples(triples)
        edges = edges[edges[:, 0] != edges[:, 2]]  # the mask: no entity sees itself
        order = torch.argsort(edges[:, 2], stable=True)
        edges = edges[order]
        counts = torch.bincount(edges[:, 2], minlength=num_entities)
        rowptr = torch.zeros(num_entities + 1, dtype=torch.long)
        rowptr[1:] = torch.cumsum(counts, 0)
        return cls(src=edges[:, 0], rel=edges[:, 1], dst=edges[:, 2], rowptr=rowptr)

    def to(self, device: torch.device | str) -> NeighbourhoodGraph:
        return NeighbourhoodGraph(*(t.to(device) for t in (self.src, self.rel, self.dst, self.rowptr)))

    @property
    def degree(self) -> torch.Tensor:
        return self.rowptr[1:] - self.rowptr[:-1]


class NeighbourhoodMean(MessagePassing):
    """Mean of ``interaction.query(x_u, r)`` over the incoming edges of each node (a PyG message-passing layer)."""

    def __init__(self, interaction: Interaction) -> None:
        super().__init__(aggr="mean", flow="source_to_target")
        self.interaction = interaction

    def forward(
        self, x: torch.Tensor, relation: torch.Tensor, edge_index: torch.Tensor, edge_type: torch.Tensor
    ) -> torch.Tensor:
        return self.propagate(edge_index, x=x, relation=relation, edge_type=edge_type)

    def message(self, x_j: torch.Tensor, relation: torch.Tensor, edge_type: torch.Tensor) -> torch.Tensor:
        return self.interaction.query(x_j, relation[edge_type])


def reconstruct_entities(
    entity: torch.Tensor, relation: torch.Tensor, graph: NeighbourhoodGraph, interaction: Interaction
) -> tuple[torch.Tensor, torch.Tensor]:
    """Full reconstruction of every entity from its (masked) neighbourhood.

    Returns ``(reconstruction [N, width], has_neighbours [N] bool)``; rows without neighbours are zero.
    """
    layer = NeighbourhoodMean(interaction)
    edge_index = torch.stack([graph.src, graph.dst])
    out = layer(entity, relation, edge_index, graph.rel)
    return out, graph.degree > 0


def sample_entity_reconstruction(
    model: KGEModel,
    graph: NeighbourhoodGraph,
    nodes: torch.Tensor,
    *,
    neighbours: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stochastic reconstruction of ``nodes`` from ``neighbours`` incoming edges drawn with replacement
    (an unbiased estimate of the neighbourhood mean at a fixed cost per node).

    Returns ``(nodes_with_neighbours, reconstruction)``.
    """
    degree = graph.rowptr[nodes + 1] - graph.rowptr[nodes]
    nodes = nodes[degree > 0]
    degree = degree[degree > 0]
    draw = torch.rand(nodes.shape[0], neighbours, generator=generator, device="cpu").to(nodes.device)
    edge = graph.rowptr[nodes].unsqueeze(1) + (draw * degree.unsqueeze(1)).long()
    messages = model.interaction.query(model.entity_rows(graph.src[edge]), model.relation_rows(graph.rel[edge]))
    return nodes, messages.mean(1)


def reconstruct_relations(
    entity: torch.Tensor, relation_rows: int, edges: torch.Tensor, interaction: Interaction
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reconstruct relation rows from model-id edges ``[n, 3]`` (``src, rel, dst``).

    Returns ``(reconstruction [relation_rows, width], counts [relation_rows])``.
    """
    heads, tails = entity.index_select(0, edges[:, 0]), entity.index_select(0, edges[:, 2])
    estimate = interaction.relation_statistics(heads, tails)
    summed = torch.zeros(relation_rows, estimate.shape[1], dtype=estimate.dtype, device=estimate.device)
    summed.index_add_(0, edges[:, 1], estimate)
    counts = torch.bincount(edges[:, 1], minlength=relation_rows)
    return interaction.aggregate_relation(summed, counts), counts


def reconstruct_batch_relations(
    heads: torch.Tensor, relations: torch.Tensor, tails: torch.Tensor, interaction: Interaction
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reconstruct the relations of a batch of edges from their gathered end rows (``heads``/``tails``
    ``[n, width]``, model relation ids ``relations [n]``): the same aggregate as :func:`reconstruct_relations`,
    computed only for the relations present, so its cost and its gradient follow the batch, not the tables.

    Returns ``(relation ids [m], reconstruction [m, width])``.
    """
    ids, slot = torch.unique(relations, return_inverse=True)
    estimate = interaction.relation_statistics(heads, tails)
    summed = torch.zeros(ids.shape[0], estimate.shape[1], dtype=estimate.dtype, device=estimate.device)
    summed.index_add_(0, slot, estimate)
    counts = torch.bincount(slot, minlength=ids.shape[0])
    return ids, interaction.aggregate_relation(summed, counts)


@torch.no_grad()
def transfer_embeddings(
    model: KGEModel,
    *,
    triples: torch.Tensor,
    num_entities: int,
    num_relations: int,
    rounds: int = 3,
    generator: torch.Generator | None = None,
) -> dict[str, int]:
    """Grow ``model`` to the new vocabulary sizes, initialising new rows from known neighbours.

    Each round fills new relations first (the aggregate of ``relation_estimate(h, t)`` over their edges between
    known entities), then new entities (the mean of ``query(u, r)`` over edges from known entities through known
    relations). What was filled counts as known in the next round, so entities and relations reached only through
    other new ones are filled later (at most ``rounds`` rounds, default 3). What stays unreachable starts at
    random. Returns counts of transferred and random rows.
    """
    old_entities, old_rows = model.num_entities, model.relation.shape[0]
    device = model.entity.device
    entity = torch.cat([model.entity.data, model.random_entities(num_entities - old_entities, generator=generator)])
    relation = torch.cat(
        [model.relation.data, model.random_relations(2 * num_relations - old_rows, generator=generator)]
    )
    edges = doubled_triples(triples).to(device)
    edges = edges[edges[:, 0] != edges[:, 2]]
    known_entity = torch.zeros(num_entities, dtype=torch.bool, device=device)
    known_entity[:old_entities] = True
    known_relation = torch.zeros(2 * num_relations, dtype=torch.bool, device=device)
    known_relation[:old_rows] = True

    entities_transferred = relations_transferred = 0
    layer = NeighbourhoodMean(model.interaction)
    for _ in range(rounds):
        # relations first, from edges whose two ends are known ...
        usable = known_entity[edges[:, 0]] & known_entity[edges[:, 2]] & ~known_relation[edges[:, 1]]
        rebuilt_r, counts = reconstruct_relations(entity, relation.shape[0], edges[usable], model.interaction)
        fill_r = (~known_relation) & (counts > 0)
        relation[fill_r] = rebuilt_r[fill_r]
        known_relation |= fill_r
        # ... then entities, from known neighbours through known relations
        usable = known_entity[edges[:, 0]] & ~known_entity[edges[:, 2]] & known_relation[edges[:, 1]]
        sub = edges[usable]
        rebuilt = layer(entity, relation, sub[:, [0, 2]].T, sub[:, 1])
        fill = torch.bincount(sub[:, 2], minlength=num_entities) > 0
        entity[fill] = rebuilt[fill]
        known_entity |= fill
        relations_transferred += int(fill_r.sum())
        entities_transferred += int(fill.sum())
        if not (fill.any() or fill_r.any()):
            break

    model.grow(
        num_entities=num_entities,
        num_relations=num_relations,
        new_entities=entity[old_entities:],
        new_relations=relation[old_rows:],
    )
    return {
        "entities_transferred": entities_transferred,
        "entities_random": num_entities - old_entities - entities_transferred,
        "relations_transferred": relations_transferred,
        "relations_random": 2 * num_relations - old_rows - relations_transferred,
    }
