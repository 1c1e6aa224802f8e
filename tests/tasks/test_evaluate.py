"""The evaluate task compares with the champion's model only: the rest of its bundle is never loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect import flow

from evergraph.kg.errors import BundleError
from evergraph.kg.store.bundle import Bundle, load_champion_model
from evergraph.kg.store.home import EvergraphHome
from evergraph.tasks.evaluate import compare_with_champion


@flow
def evaluate_flow(**kwargs: object) -> dict | None:
    return compare_with_champion(**kwargs)


def test_compares_with_the_champion_model_without_loading_its_bundle(
    knowledge_home_template: EvergraphHome, knowledge_run: Path, example_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_full_load(*args: object, **kwargs: object) -> Bundle:
        raise AssertionError("the whole champion bundle was loaded only to get its model")

    monkeypatch.setattr(Bundle, "load", no_full_load)
    result = evaluate_flow(
        home=str(knowledge_home_template.root), source=str(example_data), run_dir=str(knowledge_run), snapshot=1
    )
    assert result is not None and result["champion_version"] == "2"
    # the champion is snapshot 1 of the same run: the same model scores the same on the new test set
    assert result["new_mrr"] == pytest.approx(result["champion_mrr"])


def test_load_champion_model_checks_the_weights(knowledge_home: EvergraphHome) -> None:
    loaded = load_champion_model(knowledge_home)
    assert (loaded.version, loaded.snapshot) == ("2", 1) and not loaded.model.training
    weights = knowledge_home.bundle_dir("2") / "weights.pt"
    weights.write_bytes(weights.read_bytes() + b"x")
    with pytest.raises(BundleError, match="weights.pt does not match"):
        load_champion_model(knowledge_home)
