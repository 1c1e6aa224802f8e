import json
from pathlib import Path
from typing import Any

import pytest
import torch
from mlflow import MlflowClient

from evergraph.kg.errors import RegistryError
from evergraph.registry import RegistryConfig, log_snapshot_run, verify_manifest
from tests.registry.conftest import LINEAGE


def test_a_snapshot_run_holds_params_metrics_dataset_and_artifacts(
    logged: dict[int, str], tracking_uri: str, metrics: dict[str, Any], run_dir: Path, tmp_path: Path
):
    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(logged[1])
    entry = metrics["snapshots"][1]
    assert run.info.run_name == f"{LINEAGE}-snapshot-1" and run.info.status == "FINISHED"
    assert run.data.tags["evergraph.lineage"] == LINEAGE
    assert run.data.tags["evergraph.snapshot"] == "1"
    assert run.data.tags["evergraph.content_hash"] == entry["content_hash"]
    assert run.data.tags["evergraph.ranking"] == entry.get("ranking", "full") == "full"  # the example graph: full
    assert run.data.params["train.lr"] == "0.003" and run.data.params["model.dim"] == "32"
    assert "checksum" not in run.data.params and run.data.params["data"].endswith("data")
    assert run.data.metrics["stream_mrr"] == pytest.approx(entry["stream"]["mrr"])
    assert run.data.metrics["test_0_hits_at_10"] == pytest.approx(entry["per_test_set"][0]["hits@10"])
    assert run.data.metrics["num_entities"] == entry["num_entities"]
    losses = client.get_metric_history(logged[1], "loss")
    assert sorted(m.step for m in losses) == [r["epoch"] for r in entry["history"]]
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.digest == entry["content_hash"][:32]
    assert json.loads(dataset.dataset.source)["uri"].endswith("/1")

    plots = {a.path for a in client.list_artifacts(logged[1], "plots")}
    assert plots == {"plots/forgetting_matrix.png", "plots/stream_mrr.png"}
    model = Path(client.download_artifacts(logged[1], "model", str(tmp_path)))
    manifest = verify_manifest(model)  # every sha256 matches
    assert set(manifest["files"]) == {
        "weights.pt", "entities.tsv", "relations.tsv", "config.json", "metrics.json", "index.faiss", "index.faiss.json"
    }  # fmt: skip
    assert (manifest["snapshot"], manifest["lineage"], manifest["interaction"]) == (1, LINEAGE, "transe")
    weights = torch.load(model / "weights.pt", weights_only=True)
    assert weights["entity"].shape[0] == entry["num_entities"] == len((model / "entities.tsv").read_text().splitlines())
    assert json.loads((model / "metrics.json").read_text()) == entry


def test_snapshot_0_is_cut_to_its_own_vocabulary_and_has_no_index(
    logged: dict[int, str], tracking_uri: str, metrics: dict[str, Any], tmp_path: Path
):
    model = Path(MlflowClient(tracking_uri=tracking_uri).download_artifacts(logged[0], "model", str(tmp_path)))
    manifest = verify_manifest(model)
    assert "index.faiss" not in manifest["files"]
    assert len((model / "entities.tsv").read_text().splitlines()) == metrics["snapshots"][0]["num_entities"]


def test_logging_again_returns_the_same_run(logged: dict[int, str], tracking_uri: str, run_dir: Path):
    config = RegistryConfig(tracking_uri=tracking_uri)
    assert log_snapshot_run(run_dir=run_dir, snapshot=1, lineage=LINEAGE, config=config) == logged[1]
    runs = MlflowClient(tracking_uri=tracking_uri).search_runs(
        [MlflowClient(tracking_uri=tracking_uri).get_run(logged[1]).info.experiment_id],
        filter_string=f"tags.`evergraph.lineage` = '{LINEAGE}' AND tags.`evergraph.snapshot` = '1'",
    )
    assert [r.info.run_id for r in runs] == [logged[1]]


def test_an_unfinished_run_is_replaced(logged: dict[int, str], tracking_uri: str, run_dir: Path, tmp_path: Path):
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_run(logged[0]).info.experiment_id
    tags = {"evergraph.lineage": "crashed", "evergraph.snapshot": "0"}
    cut_short = client.create_run(experiment, tags=tags).info.run_id  # left RUNNING, as if killed mid-log
    source = tmp_path / "moved-data"
    config = RegistryConfig(tracking_uri=tracking_uri)
    run_id = log_snapshot_run(run_dir=run_dir, snapshot=0, lineage="crashed", source=source, config=config)
    assert run_id != cut_short
    assert client.get_run(run_id).data.params["data.snapshot_dir"] == str(source / "0")
    assert client.get_run(cut_short).info.lifecycle_stage == "deleted"
    assert client.get_run(run_id).info.status == "FINISHED"


def test_unfinished_snapshot_and_bad_lineage_are_clear_errors(tracking_uri: str, run_dir: Path):
    config = RegistryConfig(tracking_uri=tracking_uri)
    with pytest.raises(RegistryError, match="snapshot 3 is not finished .* train it first"):
        log_snapshot_run(run_dir=run_dir, snapshot=3, lineage=LINEAGE, config=config)
    with pytest.raises(RegistryError, match="not a valid name"):
        log_snapshot_run(run_dir=run_dir, snapshot=0, lineage="it's", config=config)


def test_a_killed_runs_artifacts_are_removed_and_the_run_is_never_reused(
    logged: dict[int, str], tracking_uri: str, run_dir: Path, tmp_path: Path
):
    from mlflow.utils.file_utils import local_file_uri_to_path

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_run(logged[0]).info.experiment_id
    killed = client.create_run(experiment, tags={"evergraph.lineage": "killed", "evergraph.snapshot": "0"}).info
    half = tmp_path / "weights.pt"
    half.write_bytes(b"half an upload")
    client.log_artifact(killed.run_id, str(half), "model")  # then the process was killed: the run stays RUNNING
    artifacts = Path(local_file_uri_to_path(killed.artifact_uri))
    assert (artifacts / "model" / "weights.pt").is_file()

    config = RegistryConfig(tracking_uri=tracking_uri)
    run_id = log_snapshot_run(run_dir=run_dir, snapshot=0, lineage="killed", config=config)
    assert run_id != killed.run_id
    old = client.get_run(killed.run_id).info
    assert (old.status, old.lifecycle_stage) == ("FAILED", "deleted")
    assert not artifacts.exists() and not artifacts.parent.exists()  # mlartifacts/<experiment>/<run id>/ is gone
    assert client.get_run(run_id).info.status == "FINISHED"
    assert log_snapshot_run(run_dir=run_dir, snapshot=0, lineage="killed", config=config) == run_id


def test_a_run_opened_at_training_start_shows_live_curves_and_is_finished_by_the_log(run_dir: Path, tmp_path: Path):
    from evergraph.registry import open_snapshot_run

    uri = f"sqlite:///{tmp_path}/live.db"
    config = RegistryConfig(tracking_uri=uri)
    client = MlflowClient(tracking_uri=uri)
    stale, _ = open_snapshot_run(lineage=LINEAGE, snapshot=1, run_dir=run_dir, config=config)  # a crashed attempt
    run_id, on_epoch = open_snapshot_run(lineage=LINEAGE, snapshot=1, run_dir=run_dir, config=config)
    assert run_id != stale
    on_epoch(1, {"epoch": 1, "max_epochs": 3, "loss": 0.9, "valid_mrr": 0.1})
    on_epoch(0, {"epoch": 1, "max_epochs": 3, "loss": 5.0})  # another snapshot of a resumed run: not this one's
    assert client.get_run(run_id).info.status == "RUNNING"  # visible during training
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")] == [(1, 0.9)]  # the first at once
    on_epoch(1, {"epoch": 2, "max_epochs": 3, "loss": 0.7})  # batched: sent within LIVE_EVERY_SECONDS, or by flush
    on_epoch.flush()
    on_epoch.flush()  # nothing pending: nothing sent twice
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")] == [(1, 0.9), (2, 0.7)]

    assert log_snapshot_run(run_dir=run_dir, snapshot=1, lineage=LINEAGE, config=config, run_id=run_id) == run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["evergraph.content_hash"]
    assert "stream_mrr" in run.data.metrics and run.data.params["model.dim"] == "32"
    assert len(client.get_metric_history(run_id, "loss")) == 2  # the history is not logged a second time
    assert client.get_run(stale).info.lifecycle_stage == "deleted"
    # a snapshot already finished: opening again returns that run, whose logger logs nothing
    again, quiet = open_snapshot_run(lineage=LINEAGE, snapshot=1, run_dir=run_dir, config=config)
    quiet(1, {"epoch": 9, "loss": 1.0})
    quiet.flush()
    assert again == run_id and len(client.get_metric_history(run_id, "loss")) == 2


def test_live_epochs_are_sent_in_batches(run_dir: Path, tmp_path: Path):
    """Records coming faster than ``every_seconds`` wait for the next batch: one ``log_batch`` call for many
    epochs, every record logged once with its own step."""
    from evergraph.registry import open_snapshot_run
    from evergraph.registry.tracking import EpochLogger

    uri = f"sqlite:///{tmp_path}/batched.db"
    config = RegistryConfig(tracking_uri=uri)
    run_id, opened = open_snapshot_run(lineage=LINEAGE, snapshot=1, run_dir=run_dir, config=config)
    client = MlflowClient(tracking_uri=uri)
    calls: list[int] = []

    class Counting:
        def log_batch(self, run_id: str, metrics: list) -> None:
            calls.append(len(metrics))
            client.log_batch(run_id, metrics=metrics)

    on_epoch = EpochLogger(client=Counting(), run_id=run_id, snapshot=1, every_seconds=3600.0)  # type: ignore[arg-type]
    for epoch in range(1, 6):
        on_epoch(1, {"epoch": epoch, "max_epochs": 5, "loss": 1.0 / epoch, "valid_mrr": 0.1 * epoch})
    assert calls == [2]  # the first epoch at once (loss and valid_mrr); the others wait
    on_epoch.flush()
    assert calls == [2, 8]
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [1, 2, 3, 4, 5]
    assert [m.step for m in client.get_metric_history(run_id, "valid_mrr")] == [1, 2, 3, 4, 5]
    assert opened.every_seconds > 0
