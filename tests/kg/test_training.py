"""Early stopping: patience counts validations whose gain is below ``min_delta``; the best weights are kept."""

from __future__ import annotations

from evergraph.kg.engine.lifelong import LifelongRun
from tests.conftest import fast_config


def epochs_of_first_snapshot(example_data, out, **train) -> dict:
    config = fast_config("finetune", max_epochs=40, eval_every=2, patience=2, **train)
    return LifelongRun(data=example_data, out=out, config=config, show_progress=False).run(upto=0)["snapshots"][0]


def test_min_delta_stops_a_slow_creep_early_but_keeps_the_best_weights(example_data, tmp_path) -> None:
    strict = epochs_of_first_snapshot(example_data, tmp_path / "strict", min_delta=1.0)  # nothing is enough
    # the first validation improves on nothing (-1); the next `patience` validations cannot gain 1.0 MRR
    assert strict["epochs"] == 2 * (1 + 2)
    history = [h["valid_mrr"] for h in strict["history"] if "valid_mrr" in h]
    assert strict["valid_mrr"] == max(history)  # best weights, not the last ones
    patient = epochs_of_first_snapshot(example_data, tmp_path / "patient", min_delta=0.0)
    assert patient["epochs"] > strict["epochs"]
