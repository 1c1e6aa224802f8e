"""Confidence calibration of inferred facts: bounded, uninformed without evidence, honest on held-out facts."""

from pathlib import Path

import torch

from evergraph.kg.engine.ingest import GrowingKG
from evergraph.kg.store.bundle import Bundle
from evergraph.kg.store.calibration import Calibration, filtered_top_k, fit_calibration, roles
from evergraph.kg.store.facts import FactTable


def test_uninformed_gives_zero_and_round_trips() -> None:
    calibration = Calibration.uninformed(k=5)
    scores = torch.tensor([[-1.0, -2.0, float("-inf")]])
    assert not calibration.informed
    assert torch.equal(
        calibration.confidence(scores, torch.tensor([True]), torch.ones(1, 3, dtype=torch.bool)), torch.zeros(1, 3)
    )
    assert Calibration.from_dict(calibration.to_dict()) == calibration


def test_no_validation_facts_is_uninformed(champion_bundle: Path) -> None:
    bundle = Bundle.load(champion_bundle)
    empty = torch.empty(0, 3, dtype=torch.long)
    assert not fit_calibration(model=bundle.model, facts=bundle.facts, valid=empty).informed


def test_fitted_calibration_is_bounded_and_round_trips(champion_bundle: Path) -> None:
    calibration = Bundle.load(champion_bundle).calibration
    assert calibration.informed and calibration.queries > 0 and 0 < calibration.positive_rate < 1
    assert calibration.ece is not None and calibration.ece < 0.1
    assert Calibration.from_dict(calibration.to_dict()) == calibration
    scores = torch.tensor([[10.0, 0.0, -5.0, -100.0, float("-inf")]])
    confidence = calibration.confidence(scores, torch.tensor([False]), torch.zeros(1, 5, dtype=torch.bool))
    assert ((confidence >= 0) & (confidence <= 1)).all() and confidence[0, -1] == 0


def test_confidence_matches_accuracy_on_test_facts(champion_bundle: Path, example_data: Path) -> None:
    """Calibrated on validation facts, the mean confidence of top-1 predictions of *test* facts (never seen by
    training or calibration) is close to how often those predictions are right."""
    bundle = Bundle.load(champion_bundle)
    kg = GrowingKG.load(example_data, upto=bundle.snapshot, entities=bundle.entities, relations=bundle.relations)
    test = torch.cat([s.test for s in kg.snapshots])
    h, r, t = test.unbind(1)
    entities, relations, answers = torch.cat([h, t]), torch.cat([2 * r, 2 * r + 1]), torch.cat([t, h])
    scores, ids = filtered_top_k(bundle.model, bundle.facts, entities, relations, k=10)
    confidence = bundle.calibration.confidence(scores, *roles(bundle.facts, entities, relations, ids))
    right = (ids[:, 0] == answers).float()
    assert abs(float(confidence[:, 0].mean()) - float(right.mean())) < 0.12
    # and it discriminates: over all top-10 candidates, confident ones are right far more often
    every = (ids == answers.unsqueeze(1)).float()
    assert every[confidence >= 0.2].mean() > 3 * every[confidence < 0.05].mean()


def test_roles() -> None:
    facts = FactTable(torch.tensor([[0, 0, 1, 0]]), num_entities=3, num_relations=1)
    answers = torch.tensor([[1, 2], [0, -1], [1, 0], [0, 1]])
    role, answer_role = roles(facts, torch.tensor([0, 1, 0, 2]), torch.tensor([0, 1, 1, 0]), answers)
    assert role.tolist() == [True, True, False, False]
    # (e, r0, ?): answers that are some fact's tail; (e, r0^-1, ?): answers that are some fact's head
    assert answer_role.tolist() == [[True, False], [True, False], [False, True], [False, True]]
