import math

import pytest
import torch

from evergraph.kg.engine.interactions import INTERACTIONS, get_interaction
from evergraph.kg.errors import UnknownComponentError


def test_registry_names_and_unknown():
    assert INTERACTIONS.names() == ["rotate", "transe"]
    with pytest.raises(UnknownComponentError, match="choose one of: rotate, transe"):
        get_interaction("distmult")


def test_transe_query_and_relation_estimate_are_consistent():
    it = get_interaction("transe")
    h, t = torch.randn(5, 8), torch.randn(5, 8)
    r = it.relation_estimate(h, t)
    assert torch.allclose(it.query(h, r), t, atol=1e-6)
    assert torch.allclose(it.distance(h, r, t), torch.zeros(5), atol=1e-5)


def test_rotate_is_a_norm_preserving_rotation():
    it = get_interaction("rotate")
    assert it.entity_width(4) == 8 and it.relation_width(4) == 4
    h = torch.randn(3, 8)
    r = torch.rand(3, 4) * 2 * math.pi - math.pi
    q = it.query(h, r)
    re, im = h.chunk(2, -1)
    qre, qim = q.chunk(2, -1)
    assert torch.allclose(re**2 + im**2, qre**2 + qim**2, atol=1e-5)
    # the phase estimated from (h, query(h, r)) recovers r
    assert torch.allclose(torch.cos(it.relation_estimate(h, q) - r), torch.ones(3, 4), atol=1e-4)


def test_rotate_relation_mean_is_circular():
    it = get_interaction("rotate")
    phases = torch.tensor([[math.pi - 0.1], [-math.pi + 0.1]])
    summed = it.relation_features(phases).sum(0, keepdim=True)
    mean = it.aggregate_relation(summed, torch.tensor([2]))
    assert abs(abs(mean.item()) - math.pi) < 1e-4  # not 0, as a plain mean would give
    assert it.relation_gap(torch.tensor([[math.pi]]), torch.tensor([[-math.pi]])).item() < 1e-6
