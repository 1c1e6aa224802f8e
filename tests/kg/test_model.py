import pytest
import torch

from evergraph.kg.engine.model import KGEModel, doubled_triples, model_relation_ids


def test_inverse_relations_are_interleaved():
    assert model_relation_ids(torch.tensor([0, 3])).tolist() == [0, 6]
    assert model_relation_ids(torch.tensor([0, 3]), inverse=True).tolist() == [1, 7]
    d = doubled_triples(torch.tensor([[1, 2, 3]]))
    assert d.tolist() == [[1, 4, 3], [3, 5, 1]]


def test_grow_keeps_old_rows_and_refuses_to_shrink():
    model = KGEModel(num_entities=4, num_relations=2, dim=8, generator=torch.Generator().manual_seed(0))
    old_e, old_r = model.entity.detach().clone(), model.relation.detach().clone()
    new = torch.ones(3, 8)
    model.grow(num_entities=7, num_relations=3, new_entities=new)
    assert model.entity.shape == (7, 8) and model.relation.shape == (6, 8)
    assert torch.equal(model.entity[:4], old_e) and torch.equal(model.relation[:4], old_r)
    assert torch.equal(model.entity[4:], new)
    with pytest.raises(ValueError, match="append-only"):
        model.grow(num_entities=6, num_relations=3)


@pytest.mark.parametrize("name", ["transe", "rotate"])
def test_score_fn_ranks_like_the_distance(name):
    model = KGEModel(interaction=name, num_entities=30, num_relations=3, dim=6)
    e = torch.arange(5)
    r = torch.tensor([0, 1, 2, 3, 5])
    scores = model.score_fn()(e, r, 30)
    h = e.repeat_interleave(30)
    triples = torch.stack([h, r.repeat_interleave(30), torch.arange(30).repeat(5)], 1)
    dist = model.distance(triples).view(5, 30).detach()
    assert torch.equal(scores.argsort(1, descending=True), dist.argsort(1))
    # restricted to a prefix of candidates
    assert model.score_fn()(e, r, 10).shape == (5, 10)
