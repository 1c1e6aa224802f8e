import pytest
import torch

from evergraph.kg.engine.autoencoder import (
    NeighbourhoodGraph,
    reconstruct_entities,
    reconstruct_relations,
    sample_entity_reconstruction,
    transfer_embeddings,
)
from evergraph.kg.engine.model import KGEModel, doubled_triples


def _model(n=6, r=2, dim=4):
    return KGEModel(num_entities=n, num_relations=r, dim=dim, generator=torch.Generator().manual_seed(0))


def test_entity_reconstruction_masks_the_entity_itself():
    # 0 -r0-> 1, and a self-loop 1 -r1-> 1 that must not leak entity 1 into its own reconstruction
    triples = torch.tensor([[0, 0, 1], [1, 1, 1]])
    model = _model(n=2)
    graph = NeighbourhoodGraph.from_triples(triples, num_entities=2)
    rebuilt, has = reconstruct_entities(model.entity.detach(), model.relation.detach(), graph, model.interaction)
    assert has.tolist() == [True, True]
    e, r = model.entity.detach(), model.relation.detach()
    assert torch.allclose(rebuilt[1], e[0] + r[0])  # only the edge from 0
    assert torch.allclose(rebuilt[0], e[1] + r[1])  # the inverse edge 1 -r0^-1-> 0


def test_sampled_reconstruction_is_exact_for_one_neighbour_and_skips_isolated():
    triples = torch.tensor([[0, 0, 1]])
    model = _model(n=3)
    graph = NeighbourhoodGraph.from_triples(triples, num_entities=3)
    nodes, rebuilt = sample_entity_reconstruction(model, graph, torch.tensor([1, 2]), neighbours=4)
    assert nodes.tolist() == [1]
    assert torch.allclose(rebuilt[0], (model.entity[0] + model.relation[0]).detach())


def test_sampled_reconstruction_is_unbiased():
    triples = torch.tensor([[0, 0, 3], [1, 1, 3], [2, 0, 3]])
    model = _model(n=4)
    graph = NeighbourhoodGraph.from_triples(triples, num_entities=4)
    full, _ = reconstruct_entities(model.entity.detach(), model.relation.detach(), graph, model.interaction)
    _, sampled = sample_entity_reconstruction(
        model, graph, torch.tensor([3]), neighbours=20000, generator=torch.Generator().manual_seed(1)
    )
    assert torch.allclose(sampled[0].detach(), full[3], atol=0.02)


def test_relation_reconstruction_is_mean_translation():
    model = _model(n=3)
    e = model.entity.detach()
    edges = doubled_triples(torch.tensor([[0, 1, 1], [1, 1, 2]]))
    rebuilt, counts = reconstruct_relations(e, 4, edges, model.interaction)
    assert counts.tolist() == [0, 0, 2, 2]
    assert torch.allclose(rebuilt[2], ((e[1] - e[0]) + (e[2] - e[1])) / 2)
    assert torch.allclose(rebuilt[3], -rebuilt[2])


def test_transfer_initialises_new_rows_from_known_neighbours():
    model = _model(n=2, r=1)
    e, r = model.entity.detach().clone(), model.relation.detach().clone()
    # new entity 2 linked to old 0 by old relation 0; new entity 3 only through 2 (second round);
    # new relation 1 between old entities 0 and 1; new entity 4 isolated (random)
    triples = torch.tensor([[0, 0, 1], [0, 0, 2], [2, 0, 3], [0, 1, 1]])
    info = transfer_embeddings(model, triples=triples, num_entities=5, num_relations=2, rounds=3)
    assert info == {"entities_transferred": 2, "entities_random": 1, "relations_transferred": 2, "relations_random": 0}
    assert torch.allclose(model.entity[:2], e)
    assert torch.allclose(model.relation[2], e[1] - e[0]) and torch.allclose(model.relation[3], e[0] - e[1])
    assert torch.allclose(model.entity[2], e[0] + r[0])
    assert torch.allclose(model.entity[3], model.entity[2] + r[0])


@pytest.mark.parametrize("name", ["distmult", "complex"])
def test_transfer_works_for_inner_product_interactions(name):
    generator = torch.Generator().manual_seed(0)
    model = KGEModel(interaction=name, num_entities=2, num_relations=1, dim=4, generator=generator)
    e, r = model.entity.detach().clone(), model.relation.detach().clone()
    triples = torch.tensor([[0, 0, 1], [0, 0, 2], [0, 1, 1]])
    info = transfer_embeddings(model, triples=triples, num_entities=3, num_relations=2, rounds=3)
    assert info["entities_transferred"] == 1 and info["relations_transferred"] == 2
    assert torch.allclose(model.entity[2], model.interaction.query(e[0], r[0]), atol=1e-6)
    # the new relation is the least-squares r of e1 ~ e0 * r: it maps e0 close to e1
    assert torch.isfinite(model.relation).all()
    rebuilt = model.interaction.query(e[0], model.relation[2].detach())
    assert float((rebuilt - e[1]).norm()) < 0.1 * float(e[1].norm()) + 1e-3


@pytest.mark.parametrize("name", ["distmult", "complex"])
def test_lkge_reconstruction_loss_runs_for_inner_product_interactions(name):
    model = KGEModel(interaction=name, num_entities=4, num_relations=2, dim=4)
    graph = NeighbourhoodGraph.from_triples(torch.tensor([[0, 0, 1], [1, 1, 2], [2, 0, 3]]), num_entities=4)
    nodes, rebuilt = sample_entity_reconstruction(model, graph, torch.tensor([1, 2, 3]), neighbours=4)
    loss = (model.entity_rows(nodes) - rebuilt).pow(2).sum(1).mean()
    edges = doubled_triples(torch.tensor([[0, 0, 1], [1, 1, 2]]))
    rebuilt_r, counts = reconstruct_relations(model.entity, 4, edges, model.interaction)
    loss = loss + model.interaction.relation_gap(model.relation, rebuilt_r)[counts > 0].sum()
    loss.backward()
    assert torch.isfinite(model.entity.grad).all() and model.entity.grad.abs().sum() > 0
