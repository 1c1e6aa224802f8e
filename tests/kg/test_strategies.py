import math

import pytest
import torch
from pydantic import ValidationError

from evergraph.kg.engine.config import RunConfig
from evergraph.kg.engine.evaluation import RankingMetrics, evaluate_split, filtered_ranks
from evergraph.kg.engine.ingest import GrowingKG
from evergraph.kg.engine.lifelong import LifelongRun
from evergraph.kg.engine.model import KGEModel
from evergraph.kg.engine.strategies import STRATEGIES, SnapshotContext, get_strategy
from evergraph.kg.engine.training import train_snapshot
from evergraph.kg.errors import UnknownComponentError
from tests.conftest import fast_config


def test_strategies_by_name():
    assert STRATEGIES.names() == ["finetune", "lkge", "retrain"]
    with pytest.raises(ValidationError, match="unknown strategy 'ewc'; choose one of: finetune, lkge, retrain"):
        RunConfig(strategy="ewc")  # refused when the config is made, before any work
    with pytest.raises(UnknownComponentError, match="finetune, lkge, retrain"):
        get_strategy(RunConfig.model_construct(strategy="ewc"))  # and by the registry itself


def chance_mrr(num_candidates: int) -> float:
    """Expected MRR of a uniformly random ranking."""
    return sum(1 / k for k in range(1, num_candidates + 1)) / num_candidates


@pytest.mark.slow  # three trainings of the example
@pytest.mark.parametrize("strategy", ["retrain", "finetune", "lkge"])
def test_each_strategy_learns_the_example_well_above_chance(strategy, example_data, tmp_path):
    metrics = LifelongRun(data=example_data, out=tmp_path, config=fast_config(strategy), show_progress=False).run(
        upto=1
    )
    last = metrics["snapshots"][-1]
    chance = chance_mrr(last["num_entities"])
    assert last["stream"]["mrr"] > max(5 * chance, 0.15), (strategy, last["stream"], chance)
    assert last["stream"]["hits@10"] > 0.3


def _mrr_on_new_entities(model, kg: GrowingKG, index: int) -> float:
    snap, old = kg.snapshots[index], kg.snapshots[index - 1].num_entities
    test = snap.test[(snap.test[:, 0] >= old) | (snap.test[:, 2] >= old)]
    assert test.shape[0] > 10
    ranks = filtered_ranks(
        score_fn=model.score_fn(), triples=test, known=kg.known_facts(index), num_candidates=snap.num_entities
    )
    return RankingMetrics.from_ranks(ranks.realistic).mrr


def test_transfer_gives_new_entities_a_better_start_than_random(example_data):
    kg = GrowingKG.load(example_data, upto=1)
    config = fast_config("lkge")
    first = get_strategy(config)
    gen = torch.Generator().manual_seed(0)
    ctx0 = SnapshotContext(kg=kg, index=0, device=torch.device("cpu"), generator=gen)
    model = first.prepare(None, ctx0)

    def validate(m: KGEModel) -> float:
        return evaluate_split(score_fn=m.score_fn(), snapshots=kg.snapshots, upto=0, target=0, split="valid").mrr

    outcome = train_snapshot(
        model=model, strategy=first, ctx=ctx0, config=config.train, validate=validate, show_progress=False
    )
    assert outcome.best_valid_mrr > 0.2
    state = {k: v.clone() for k, v in model.state_dict().items()}

    results = {}
    for transfer in (True, False):
        config.lkge.transfer = transfer
        strategy = get_strategy(config)
        fresh = KGEModel(
            num_entities=state["entity"].shape[0],
            num_relations=state["relation"].shape[0] // 2,
            dim=config.model.dim,
            init_scale=config.model.init_scale,
        )
        fresh.load_state_dict(state)
        ctx1 = SnapshotContext(kg=kg, index=1, device=torch.device("cpu"), generator=torch.Generator().manual_seed(1))
        grown = strategy.prepare(fresh, ctx1)
        results[transfer] = _mrr_on_new_entities(grown, kg, 1)
    assert results[True] > results[False] + 0.05, results
    assert results[False] < 3 * chance_mrr(kg.snapshots[1].num_entities) + 0.05  # random rows know nothing


@pytest.mark.slow  # two trainings of the example
def test_regularisation_reduces_forgetting_compared_with_finetune(example_data, tmp_path):
    finetune = LifelongRun(
        data=example_data, out=tmp_path / "ft", config=fast_config("finetune"), show_progress=False
    ).run(upto=2)
    config = fast_config("lkge")
    config.lkge.reconstruction_weight = 0.0  # isolate the regulariser
    config.lkge.regularization_weight = 0.01  # strong, so its effect shows in a few epochs on a tiny graph
    config.lkge.transfer = False
    lkge = LifelongRun(data=example_data, out=tmp_path / "reg", config=config, show_progress=False).run(upto=2)

    def first_test_set(metrics):
        return metrics["snapshots"][-1]["per_test_set"][0]["mrr"]

    # learned the same first snapshot, then forgot less of it
    assert math.isclose(finetune["snapshots"][0]["stream"]["mrr"], lkge["snapshots"][0]["stream"]["mrr"], rel_tol=1e-6)
    assert first_test_set(lkge) > first_test_set(finetune) + 0.02, (first_test_set(lkge), first_test_set(finetune))


def test_lkge_weights_grow_with_training_counts(example_data):
    kg = GrowingKG.load(example_data, upto=1)
    strategy = get_strategy(fast_config("lkge"))
    gen = torch.Generator().manual_seed(0)
    model = None
    for index in (0, 1):
        ctx = SnapshotContext(kg=kg, index=index, device=torch.device("cpu"), generator=gen)
        model = strategy.prepare(model, ctx)
        strategy.finish(model, ctx)
    facts = kg.train_facts(1)
    expected = torch.bincount(facts[:, [0, 2]].reshape(-1), minlength=kg.snapshots[1].num_entities).float()
    assert torch.equal(strategy.entity_weight, expected)
    assert torch.equal(strategy.old_entity, model.entity.detach())


def test_closed_form_regularisation_gradient_matches_autograd(example_data):
    kg, strategy, model, _ = _lkge_at_snapshot_1(example_data, regularization_weight=0.3)
    with torch.no_grad():
        model.entity.add_(torch.randn_like(model.entity) * 0.1)
        model.relation.add_(torch.randn_like(model.relation) * 0.1)
    (0.3 * strategy.regularization_loss(model)).backward()
    expected = model.entity.grad.clone(), model.relation.grad.clone()
    model.zero_grad(set_to_none=True)
    strategy.add_gradients(model)
    assert torch.allclose(model.entity.grad, expected[0], atol=1e-5)
    assert torch.allclose(model.relation.grad, expected[1], atol=1e-5)
    assert expected[0][kg.snapshots[0].num_entities :].abs().sum() == 0  # new entities are free


def _lkge_at_snapshot_1(example_data, **lkge: object):
    """An LKGE strategy and model prepared for snapshot 1 of the example, after snapshot 0 (untrained)."""
    kg = GrowingKG.load(example_data, upto=1)
    config = fast_config("lkge")
    for key, value in lkge.items():
        setattr(config.lkge, key, value)
    strategy = get_strategy(config)
    gen = torch.Generator().manual_seed(0)
    ctx0 = SnapshotContext(kg=kg, index=0, device=torch.device("cpu"), generator=gen)
    model = strategy.prepare(None, ctx0)
    strategy.finish(model, ctx0)
    ctx1 = SnapshotContext(kg=kg, index=1, device=torch.device("cpu"), generator=gen)
    return kg, strategy, strategy.prepare(model, ctx1), ctx1


def test_replay_moves_only_new_entities_away_from_old_queries(example_data):
    kg, strategy, model, ctx = _lkge_at_snapshot_1(example_data, reconstruction_weight=0.0)
    old = kg.snapshots[0].num_entities
    assert kg.snapshots[1].num_entities > old
    facts, first, end = strategy._replay
    assert (first, end) == (old, kg.snapshots[1].num_entities)
    assert int(facts[:, [0, 2]].max()) < old  # only facts among old entities are replayed
    loss = strategy.extra_loss(model, facts[:64], ctx)
    loss.backward()
    assert model.entity.grad[:old].abs().sum() == 0  # old queries are frozen
    assert model.relation.grad is None or model.relation.grad.abs().sum() == 0
    assert model.entity.grad[old:].abs().sum() > 0

    # a few steps on the replay term alone push new entities out of old answers' way
    def closest_new(m: KGEModel) -> float:
        with torch.no_grad():
            query = m.interaction.query(m.entity[facts[:, 0]], m.relation[facts[:, 1]])
            return float(torch.cdist(query, m.entity[old:]).min(1).values.mean())

    before = closest_new(model)
    optimizer = torch.optim.Adam([model.entity], lr=0.01)
    for _ in range(20):
        optimizer.zero_grad()
        strategy.extra_loss(model, facts[:64], ctx).backward()
        optimizer.step()
    assert closest_new(model) > before + 0.1, (before, closest_new(model))


def test_replay_off_is_the_papers_lkge(example_data):
    _, strategy, model, ctx = _lkge_at_snapshot_1(example_data, reconstruction_weight=0.0, replay_weight=0.0)
    assert strategy._replay is None
    assert float(strategy.extra_loss(model, torch.zeros((4, 3), dtype=torch.long), ctx)) == 0.0
