"""Train task: learn one snapshot with the engine, continuing the lineage's run directory."""

from __future__ import annotations

import time
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from evergraph.kg.engine.config import RunConfig
from evergraph.kg.engine.lifelong import LifelongRun
from evergraph.kg.engine.run_files import find_entry
from evergraph.registry import open_snapshot_run
from evergraph.registry.tracking import EpochLogger
from evergraph.tasks.artifacts import artifact_key
from evergraph.tasks.common import open_registry, retry_unless_final

PROGRESS_EVERY_SECONDS = 10.0
"""The Prefect progress artifact is updated at most this often (each update is an API call, about 15 ms of the
training thread's time and the API server's CPU beside training; the Prefect UI polls slower anyway)."""


class _ProgressReporter:
    """Turns the engine's per-epoch records into a Prefect progress artifact (percent of ``max_epochs``;
    early stopping jumps it to 100 %)."""

    def __init__(self, *, snapshot: int, key: str) -> None:
        self.snapshot = snapshot
        self.artifact_id = create_progress_artifact(
            progress=0.0,
            key=key,
            description=f"training snapshot {snapshot}: epochs done / max epochs (early stopping on the validation "
            "MRR usually ends training sooner; it then jumps to 100%)",
        )
        self._last = 0.0

    def __call__(self, snapshot: int, record: dict[str, float]) -> None:
        now = time.monotonic()
        if snapshot != self.snapshot or now - self._last < PROGRESS_EVERY_SECONDS:
            return
        self._last = now
        try:
            update_progress_artifact(self.artifact_id, progress=100.0 * record["epoch"] / record["max_epochs"])
        except Exception as error:  # noqa: BLE001 - progress is cosmetic; training must not fail for it
            get_run_logger().debug("progress artifact not updated: %s", error)

    def done(self) -> None:
        update_progress_artifact(self.artifact_id, progress=100.0)


@task(name="train", task_run_name="train-snapshot-{snapshot}", retry_condition_fn=retry_unless_final)
def train_snapshot(
    *,
    source: str,
    run_dir: str,
    config: dict[str, Any],
    snapshot: int,
    lineage: str,
    show_progress: bool = False,
    home: str | None = None,
    registry: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Learn snapshots up to ``snapshot`` in ``run_dir`` (resuming; finished snapshots are not redone) and
    return the metrics entry of ``snapshot`` (without its per-epoch history).

    With ``registry`` (default None: no MLflow), the snapshot's MLflow run is opened before training and each
    epoch's loss and validation MRR are logged to it live; its id is returned as ``mlflow_run_id`` for the
    register task, which completes that run."""
    run_config = RunConfig.model_validate(config)
    reporter = _ProgressReporter(snapshot=snapshot, key=artifact_key(lineage, "training"))
    run_id, live = _open_live_run(home=home, registry=registry, lineage=lineage, snapshot=snapshot, run_dir=run_dir)

    def on_epoch(index: int, record: dict[str, float]) -> None:
        reporter(index, record)
        if live is not None:
            live(index, record)

    run = LifelongRun(data=source, out=run_dir, config=run_config, show_progress=show_progress, on_epoch=on_epoch)
    try:
        metrics = run.run(upto=snapshot)
    finally:
        if live is not None:
            live.flush()  # the epochs logged since the last batch (the register task finishes the run)
    reporter.done()
    entry = find_entry(metrics, snapshot)
    assert entry is not None  # run(upto=snapshot) finished it (the engine logged the event line about it)
    return {**{k: v for k, v in entry.items() if k != "history"}, "mlflow_run_id": run_id}


def _open_live_run(
    *, home: str | None, registry: dict[str, Any] | None, lineage: str, snapshot: int, run_dir: str
) -> tuple[str | None, EpochLogger | None]:
    """The snapshot's MLflow run, opened now, and its per-epoch logger; (None, None) without a registry or when
    the store cannot be reached (training goes on; the register task logs everything afterwards)."""
    if registry is None:
        return None, None
    try:
        reg = open_registry(home=home, registry=registry)
        return open_snapshot_run(
            lineage=lineage,
            snapshot=snapshot,
            run_dir=run_dir,
            config=reg.config,
            client=reg.client,
            experiment_id=reg.experiment_id,
        )
    except Exception as error:  # noqa: BLE001 - live curves are a view; training must not fail for them
        get_run_logger().warning("MLflow run not opened before training (%s); curves appear after it", error)
        return None, None
