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


@flow
def comparing_flow(**kwargs: object) -> dict | None:
    return compare_with_champion(**kwargs)


def test_one_task_per_test_set_gives_the_whole_comparison_and_loads_each_model_once(
    knowledge_home: EvergraphHome, knowledge_run: Path, example_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from evergraph.kg.engine.comparison import compare_on_earlier_test_sets, compare_on_new_test_set
    from evergraph.kg.engine.ingest import load_shared
    from evergraph.kg.engine.run_files import RunPaths, load_model_checkpoint
    from evergraph.kg.store.bundle_writer import switch_pointer
    from evergraph.tasks import evaluate

    # the champion is snapshot 0: the new version (snapshot 1) differs from it
    switch_pointer(pointer=knowledge_home.champion_pointer, bundle=knowledge_home.bundle_dir("1"), version="1")
    loads: list[str] = []
    monkeypatch.setattr(
        evaluate, "load_champion_model", lambda home: loads.append("champion") or load_champion_model(home)
    )
    monkeypatch.setattr(
        evaluate, "load_model_checkpoint", lambda path: loads.append("new") or load_model_checkpoint(path)
    )
    evaluate.release_models()
    state = comparing_flow(
        home=str(knowledge_home.root),
        source=str(example_data),
        run_dir=str(knowledge_run),
        snapshot=1,
        return_state=True,
    )
    result = state.result()

    # what one task computed before the split: the same engine functions over every test set at once
    champion = load_champion_model(knowledge_home)
    new, _ = load_model_checkpoint(RunPaths(knowledge_run).snapshot_checkpoint(1))
    kg = load_shared(example_data, upto=1)
    whole = compare_on_new_test_set(new=new, champion=champion.model, kg=kg, snapshot=1)
    earlier = compare_on_earlier_test_sets(new=new, champion=champion.model, kg=kg, snapshot=1, test_sets=range(1))
    assert result == {
        **whole.to_dict(),
        "earlier": earlier.to_dict(),
        "champion_version": "1",
        "ranking": "full",
    }
    assert result["new_mrr"] != result["champion_mrr"]  # two different models were compared
    assert sorted(loads) == ["champion", "new"]  # each model once for the plan and both test-set tasks

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    assert {run.name for run in runs} == {
        "plan-snapshot-1-comparison",
        "compare-snapshot-1-test-set-1",
        "compare-snapshot-1-test-set-0",
    }
    assert all(run.state is not None and run.state.is_completed() for run in runs)
