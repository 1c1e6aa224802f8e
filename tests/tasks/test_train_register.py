"""The train task opens the snapshot's MLflow run before training and logs each epoch to it live; the register
task completes that same run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from prefect import flow

from evergraph.tasks.register import register_snapshot
from evergraph.tasks.train import train_snapshot
from tests.conftest import fast_config


@flow
def train_then_register(*, source: str, run_dir: str, home: str, registry: dict[str, Any], config: dict) -> dict:
    entry = train_snapshot(
        source=source, run_dir=run_dir, config=config, snapshot=0, lineage="live", home=home, registry=registry
    )
    client = MlflowClient(tracking_uri=registry["tracking_uri"])
    during = client.get_run(entry["mlflow_run_id"]).info.status  # after training, before registration
    losses = client.get_metric_history(entry["mlflow_run_id"], "loss")
    registered = register_snapshot(
        home=home, registry=registry, lineage="live", source=source, run_dir=run_dir, snapshot=0,
        parent_version=None, run_id=entry["mlflow_run_id"],
    )  # fmt: skip
    return {"entry": entry, "during": during, "losses": [m.step for m in losses], "registered": registered}


def test_training_curves_are_in_mlflow_before_registration(example_data: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    config = fast_config("finetune", max_epochs=6, eval_every=3, checkpoint_every=3).model_dump()
    out = train_then_register(
        source=str(example_data), run_dir=str(tmp_path / "run"), home=str(tmp_path / "home"),
        registry={"tracking_uri": uri}, config=config,
    )  # fmt: skip
    entry, run_id = out["entry"], out["entry"]["mlflow_run_id"]
    assert out["during"] == "RUNNING"
    assert out["losses"] == list(range(1, entry["epochs"] + 1))  # one point per epoch, logged as it ended
    assert out["registered"]["run_id"] == run_id and out["registered"]["version"] == "1"
    run = MlflowClient(tracking_uri=uri).get_run(run_id)
    assert run.info.status == "FINISHED" and "stream_mrr" in run.data.metrics
    assert len(MlflowClient(tracking_uri=uri).get_metric_history(run_id, "loss")) == entry["epochs"]
