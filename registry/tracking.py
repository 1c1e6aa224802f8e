"""Log one engine snapshot to MLflow: one run per (lineage, snapshot), idempotent.

What a run holds (``log_snapshot_run``)::

    tags      evergraph.lineage, evergraph.snapshot, evergraph.content_hash, evergraph.config_checksum,
              evergraph.ranking (full, or sampled-N: the candidates each query was ranked against)
    params    the RunConfig flattened (strategy, model.dim, train.lr, ...), data (source dir), data.snapshot_dir
    metrics   per epoch (step = epoch): loss, valid_mrr, ... from the snapshot's training history
              final: stream_mrr, stream_hits_at_{1,3,10}, test_<j>_mrr, test_<j>_hits_at_{1,3,10},
              best_valid_mrr, epochs, best_epoch, train_seconds, eval_seconds, peak_rss_mb, num_entities,
              num_relations, train_facts, ingest.<policy>.<split>, transfer.<count>
    inputs    the snapshot directory as an mlflow.data dataset (digest = content hash, context "training")
    artifacts model/weights.pt         state_dict of tensors only (torch.load(weights_only=True))
              model/entities.tsv       vocabularies cut to this snapshot's counts (id<TAB>label)
              model/relations.tsv
              model/config.json        the run directory's config.json
              model/metrics.json       this snapshot's metrics.json entry
              model/index.faiss(.json) the FAISS index and sidecar, when OUT/indexes/snapshot-N.faiss exists
              model/manifest.json      sha256 of every file above + lineage, snapshot, content_hash, ...
              plots/forgetting_matrix.png, plots/stream_mrr.png
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from mlflow import MlflowClient
from mlflow.data.dataset_source_registry import get_dataset_source_from_json
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, Run, RunStatus
from mlflow.utils.file_utils import local_file_uri_to_path
from mlflow.utils.uri import is_local_uri

from evergraph.kg.engine.atomic import write_json, write_text
from evergraph.kg.engine.run_files import find_entry
from evergraph.kg.errors import RegistryError
from evergraph.kg.store.home import EvergraphHome
from evergraph.registry._store import TAG_CONTENT_HASH, TAG_LINEAGE, TAG_SNAPSHOT, Store, check_lineage
from evergraph.registry.config import RegistryConfig
from evergraph.registry.manifest import write_manifest
from evergraph.registry.plots import forgetting_matrix_png, stream_mrr_png

logger = logging.getLogger(__name__)

MODEL_DIR = "model"
PLOTS_DIR = "plots"
PLOTS = ("forgetting_matrix.png", "stream_mrr.png")
"""Files under ``plots/`` of every snapshot run."""
_BATCH_PARAMS = 100  # MLflow's log_batch limits
_BATCH_METRICS = 1000

T = TypeVar("T")


def run_name(*, lineage: str, snapshot: int) -> str:
    """The MLflow run name of one snapshot of one lineage: ``<lineage>-snapshot-<N>``."""
    return f"{lineage}-snapshot-{snapshot}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"{path} is missing; is {path.parent} an engine run directory (evergraph train)?") from None


def snapshot_entry(metrics: Mapping[str, Any], *, snapshot: int, where: Path | str = "metrics.json") -> dict[str, Any]:
    """The ``metrics.json`` entry of ``snapshot``; :class:`RegistryError` when it is not finished."""
    entry = find_entry(dict(metrics), snapshot)
    if entry is not None:
        return entry
    done = [int(e["snapshot"]) for e in metrics.get("snapshots", [])]
    raise RegistryError(
        f"snapshot {snapshot} is not finished in {where} (finished: {done or 'none'}); train it first "
        f"(evergraph train --upto {snapshot}) and log it again"
    )


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value


def _chunks(items: list[T], size: int) -> Iterable[list[T]]:
    return (items[i : i + size] for i in range(0, len(items), size))


def _metric_name(name: str) -> str:
    return name.replace("@", "_at_")


def _final_metrics(entry: Mapping[str, Any]) -> dict[str, float]:
    values: dict[str, float] = {}
    for key, value in entry["stream"].items():
        values[f"stream_{_metric_name(key)}"] = value
    for result in entry.get("per_test_set", []):
        for key, value in result.items():
            if key != "snapshot":
                values[f"test_{result['snapshot']}_{_metric_name(key)}"] = value
    for key in ("epochs", "best_epoch", "train_seconds", "eval_seconds", "peak_rss_mb"):
        if key in entry:
            values[key] = entry[key]
    for key in ("num_entities", "num_relations", "train_facts"):
        values[key] = entry[key]
    if entry.get("valid_mrr") is not None:
        values["best_valid_mrr"] = entry["valid_mrr"]
    for group in ("ingest", "transfer"):
        for key, value in _flatten(entry.get(group, {}), f"{group}."):
            if isinstance(value, int | float) and not isinstance(value, bool):
                values[key] = value
    return {k: float(v) for k, v in values.items()}


def _metrics(entry: Mapping[str, Any], *, history: bool = True) -> list[Metric]:
    """The final metrics, and (``history``, default True: not logged live) the per-epoch records."""
    now = int(time.time() * 1000)
    metrics = [Metric(name, value, now, 0) for name, value in _final_metrics(entry).items()]
    for record in entry.get("history", []) if history else []:
        epoch = int(record["epoch"])
        for key, value in record.items():
            if key != "epoch" and isinstance(value, int | float):
                metrics.append(Metric(_metric_name(key), float(value), now, epoch))
    return metrics


def _params(settings: Mapping[str, Any]) -> list[Param]:
    """The RunConfig settings flattened to ``strategy``, ``model.dim``, ``train.lr``, ..."""
    return [Param(k, "" if v is None else str(v)) for k, v in _flatten(settings)]


def _dataset_input(*, snapshot_dir: str, name: str, content_hash: str) -> DatasetInput:
    """The snapshot directory as a metadata-only ``mlflow.data`` dataset (a local path source; works offline)."""
    source = get_dataset_source_from_json(json.dumps({"uri": snapshot_dir}), source_type="local")
    meta = MetaDataset(source, name=name, digest=content_hash[:32]).to_dict()
    dataset = Dataset(name=meta["name"], digest=meta["digest"], source_type=meta["source_type"], source=meta["source"])
    return DatasetInput(dataset=dataset, tags=[InputTag(key="mlflow.data.context", value="training")])


def _write_model_dir(
    *, target: Path, run_dir: Path, entry: Mapping[str, Any], lineage: str, run_config: Mapping[str, Any]
) -> dict[str, Any]:
    snapshot = int(entry["snapshot"])
    checkpoint_path = run_dir / "checkpoints" / f"snapshot-{snapshot}.pt"
    if not checkpoint_path.is_file():
        raise RegistryError(f"{checkpoint_path} is missing; resume the run (evergraph train) to write it again")
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in checkpoint["model"].items()}
    rows = int(weights["entity"].shape[0])
    if checkpoint.get("snapshot") != snapshot or rows != int(entry["num_entities"]):
        raise RegistryError(
            f"{checkpoint_path} (snapshot {checkpoint.get('snapshot')}, {rows} entities) does not match "
            f"metrics.json (snapshot {snapshot}, {entry['num_entities']} entities); the run directory is "
            "inconsistent: restore it or train a new run"
        )
    target.mkdir(parents=True)
    torch.save(weights, target / "weights.pt")
    for name, count in (("entities", int(entry["num_entities"])), ("relations", int(entry["num_relations"]))):
        source = run_dir / "vocab" / f"{name}.tsv"
        lines = source.read_text(encoding="utf-8").splitlines(keepends=True) if source.is_file() else []
        if len(lines) < count:
            raise RegistryError(
                f"{source} has {len(lines)} lines but snapshot {snapshot} needs {count}; resume the run to "
                "rewrite its vocabularies"
            )
        write_text(target / f"{name}.tsv", "".join(lines[:count]))
    write_json(target / "config.json", dict(run_config))
    write_json(target / "metrics.json", dict(entry))
    index = run_dir / "indexes" / f"snapshot-{snapshot}.faiss"
    if index.is_file():
        shutil.copyfile(index, target / "index.faiss")
        sidecar = index.with_name(index.name + ".json")
        if sidecar.is_file():
            shutil.copyfile(sidecar, target / "index.faiss.json")
    return write_manifest(
        directory=target,
        info={
            "lineage": lineage,
            "snapshot": snapshot,
            "content_hash": entry["content_hash"],
            "interaction": checkpoint["model_name"],
            "dim": int(checkpoint["dim"]),
            "width": int(weights["entity"].shape[1]),
            "num_entities": int(entry["num_entities"]),
            "num_relations": int(entry["num_relations"]),
            "strategy": run_config.get("strategy"),
            "protocol": run_config.get("protocol"),
        },
    )


def _local_artifact_dir(artifact_uri: str | None) -> Path | None:
    """The directory of a run's artifacts when they are local files (``file://`` or a path), else None."""
    if not artifact_uri or not is_local_uri(artifact_uri):
        return None
    path = Path(local_file_uri_to_path(artifact_uri) if artifact_uri.startswith("file:") else artifact_uri)
    return path if path.is_dir() else None


def discard_unfinished_run(client: MlflowClient, run: Run, *, what: str) -> None:
    """A run cut short (a killed log: status RUNNING, or FAILED) is never reused: it is marked FAILED, its local
    artifacts (half-uploaded weights, plots) are removed, and it is deleted; the snapshot is logged anew."""
    run_id = run.info.run_id
    logger.warning("discarding unfinished run %s (%s) of %s and its artifacts", run_id, run.info.status, what)
    if run.info.status == RunStatus.to_string(RunStatus.RUNNING):
        client.set_terminated(run_id, status="FAILED")
    artifacts = _local_artifact_dir(run.info.artifact_uri)
    if artifacts is not None:  # mlartifacts/<experiment>/<run id>/artifacts: the run's own directory goes
        own = artifacts.parent if artifacts.name == "artifacts" and artifacts.parent.name == run_id else artifacts
        shutil.rmtree(own, ignore_errors=True)
    client.delete_run(run_id)


LIVE_EVERY_SECONDS = 10.0
"""Live per-epoch metrics are sent to MLflow at most this often (the MLflow UI refreshes its charts slower)."""
TAG_LIVE = "evergraph.live"
"""Tag of a run opened when training starts (per-epoch metrics logged live); :func:`log_snapshot_run` finishes it."""


class EpochLogger:
    """The engine's ``on_epoch`` callback logging one snapshot's per-epoch records (loss, valid MRR, ...; step =
    epoch) to an open MLflow run as they come, so the MLflow UI shows the curves during training. Records are sent
    in batches: the first at once, then at most one ``log_batch`` call every ``every_seconds`` (default
    :data:`LIVE_EVERY_SECONDS`; each call is a store transaction, about 10 ms on SQLite); :meth:`flush` sends the
    rest (the train task calls it when training ends). A failure to log is a warning: training never fails for
    it."""

    def __init__(self, *, client: MlflowClient, run_id: str, snapshot: int, every_seconds: float | None = None) -> None:
        self.client, self.run_id, self.snapshot = client, run_id, snapshot
        self.every_seconds = LIVE_EVERY_SECONDS if every_seconds is None else every_seconds
        self._pending: list[Metric] = []
        self._last: float | None = None  # monotonic time of the last batch sent; None: nothing sent yet

    def __call__(self, snapshot: int, record: Mapping[str, Any]) -> None:
        if snapshot != self.snapshot:
            return
        now = int(time.time() * 1000)
        epoch = int(record["epoch"])
        self._pending.extend(
            Metric(_metric_name(key), float(value), now, epoch)
            for key, value in record.items()
            if key not in ("epoch", "max_epochs") and isinstance(value, int | float) and not isinstance(value, bool)
        )
        if self._last is None or time.monotonic() - self._last >= self.every_seconds:
            self.flush()

    def flush(self) -> None:
        """Send the records not sent yet."""
        self._last = time.monotonic()
        pending, self._pending = self._pending, []
        try:
            for chunk in _chunks(pending, _BATCH_METRICS):
                self.client.log_batch(self.run_id, metrics=chunk)
        except Exception as error:  # noqa: BLE001 - live curves are a view; the final log has everything
            logger.warning(
                "%d epoch metric(s) of snapshot %d not logged to run %s: %s",
                len(pending),
                self.snapshot,
                self.run_id,
                error,
            )


def open_snapshot_run(
    *,
    lineage: str,
    snapshot: int,
    run_dir: Path | str,
    config: RegistryConfig | None = None,
    home: EvergraphHome | None = None,
    client: MlflowClient | None = None,
    experiment_id: str | None = None,
) -> tuple[str, EpochLogger]:
    """Open the MLflow run of ``snapshot`` when its training starts; returns its id and an :class:`EpochLogger`
    for the engine's ``on_epoch``. :func:`log_snapshot_run` with this ``run_id`` completes and finishes it (an
    open run left behind by a crash is deleted and redone there). A snapshot already logged FINISHED returns that
    run and a logger that logs nothing new (idempotent)."""
    check_lineage(lineage)
    store = Store.open(config=config, home=home, client=client, experiment_id=experiment_id)
    for run in find_snapshot_runs(store, lineage=lineage, snapshot=snapshot):
        if run.info.status == RunStatus.to_string(RunStatus.FINISHED):
            return run.info.run_id, EpochLogger(client=store.client, run_id=run.info.run_id, snapshot=-1)
    tags = {
        TAG_LINEAGE: lineage,
        TAG_SNAPSHOT: str(snapshot),
        TAG_LIVE: "1",
        "evergraph.run_dir": str(Path(run_dir).resolve()),
    }
    run = store.client.create_run(store.experiment_id, run_name=run_name(lineage=lineage, snapshot=snapshot), tags=tags)
    logger.info("MLflow run %s opened for %s snapshot %d (live training curves)", run.info.run_id, lineage, snapshot)
    return run.info.run_id, EpochLogger(client=store.client, run_id=run.info.run_id, snapshot=snapshot)


def find_snapshot_runs(store: Store, *, lineage: str, snapshot: int) -> list[Run]:
    """Active (not deleted) runs tagged with ``lineage`` and ``snapshot``, oldest first."""
    query = f"tags.`{TAG_LINEAGE}` = '{check_lineage(lineage)}' AND tags.`{TAG_SNAPSHOT}` = '{int(snapshot)}'"
    return list(
        store.client.search_runs([store.experiment_id], filter_string=query, order_by=["attributes.start_time ASC"])
    )


def log_snapshot_run(
    *,
    run_dir: Path | str,
    snapshot: int,
    lineage: str,
    source: Path | str | None = None,
    config: RegistryConfig | None = None,
    home: EvergraphHome | None = None,
    tracking_uri: str | None = None,
    client: MlflowClient | None = None,
    experiment_id: str | None = None,
    run_id: str | None = None,
) -> str:
    """Log snapshot ``snapshot`` of the engine run directory ``run_dir`` as one MLflow run; returns its run id.

    ``run_id`` (default None) is the run :func:`open_snapshot_run` opened when training started: it is completed
    (its per-epoch curves are already there) and finished instead of a new run being created.

    ``lineage`` names the run directory's history (e.g. ``example-lkge``); the run is named
    ``<lineage>-snapshot-<N>``. ``source`` is the dataset directory (default None: the ``data`` recorded in
    ``run_dir/config.json``); the dataset input points at ``source/<N>``.

    The store: ``client`` (e.g. :attr:`ModelRegistry.client`) and ``experiment_id`` when given (default None),
    else the one of ``config`` (default ``RegistryConfig()``) and ``home`` (default
    ``EvergraphHome.resolve()``), ``tracking_uri`` (default None) overriding ``config.tracking_uri``; the
    experiment defaults to ``config.experiment``, created on first use.

    Idempotent: a FINISHED run with the same lineage and snapshot is returned as it is (nothing is logged); an
    unfinished one (a log cut short) is marked failed, its local artifacts removed and the run deleted
    (:func:`discard_unfinished_run`), and the snapshot is logged anew. A finished run whose content
    hash differs raises :class:`RegistryError` (the lineage's history changed).
    """
    run_dir = Path(run_dir)
    check_lineage(lineage)
    metrics = _read_json(run_dir / "metrics.json")
    entry = snapshot_entry(metrics, snapshot=snapshot, where=run_dir / "metrics.json")
    run_config = _read_json(run_dir / "config.json")
    store = Store.open(config=config, home=home, tracking_uri=tracking_uri, client=client, experiment_id=experiment_id)
    client = store.client

    live = None
    for run in find_snapshot_runs(store, lineage=lineage, snapshot=snapshot):
        if run.info.run_id == run_id and run.info.status == RunStatus.to_string(RunStatus.RUNNING):
            live = run  # opened when training started: completed below
            continue
        if run.info.status != RunStatus.to_string(RunStatus.FINISHED):
            discard_unfinished_run(client, run, what=f"{lineage} snapshot {snapshot}")
            continue
        logged = run.data.tags.get(TAG_CONTENT_HASH, "?")
        if logged != entry["content_hash"]:
            raise RegistryError(
                f"run {run.info.run_id} already logged {lineage} snapshot {snapshot} with different data "
                f"(content hash {logged[:12]}... vs {entry['content_hash'][:12]}...); "
                "use a new lineage name for the new history, or delete that run in MLflow"
            )
        logger.info("%s snapshot %d is already logged as run %s", lineage, snapshot, run.info.run_id)
        return run.info.run_id

    data = str(source if source is not None else run_config.get("data", ""))
    tags = {
        TAG_LINEAGE: lineage,
        TAG_SNAPSHOT: str(snapshot),
        TAG_CONTENT_HASH: entry["content_hash"],
        "evergraph.config_checksum": str(run_config.get("checksum", "")),
        "evergraph.run_dir": str(run_dir.resolve()),
        # how the metrics ranked: "full" or "sampled-N" (above the evaluation's size threshold)
        "evergraph.ranking": str(entry.get("ranking", "full")),
    }
    if live is None:
        run = client.create_run(store.experiment_id, run_name=run_name(lineage=lineage, snapshot=snapshot), tags=tags)
    else:
        run = live
        for key, value in tags.items():
            client.set_tag(run.info.run_id, key, value)
    run_id = run.info.run_id
    try:
        settings = {k: v for k, v in run_config.items() if k not in ("checksum", "data")}
        snapshot_dir = str(Path(data) / str(snapshot)) if data else ""
        params = _params(settings) + [Param("data", data), Param("data.snapshot_dir", snapshot_dir)]
        for chunk in _chunks(params, _BATCH_PARAMS):
            client.log_batch(run_id, params=chunk)
        for chunk in _chunks(_metrics(entry, history=live is None), _BATCH_METRICS):
            client.log_batch(run_id, metrics=chunk)
        if data:
            name = f"{Path(data).name}-snapshot-{snapshot}"
            dataset = _dataset_input(snapshot_dir=snapshot_dir, name=name, content_hash=entry["content_hash"])
            client.log_inputs(run_id, datasets=[dataset])
        with tempfile.TemporaryDirectory(prefix="evergraph-log-") as tmp:
            model_dir = Path(tmp) / MODEL_DIR
            _write_model_dir(target=model_dir, run_dir=run_dir, entry=entry, lineage=lineage, run_config=run_config)
            plots = Path(tmp) / PLOTS_DIR
            forgetting_matrix_png(metrics=metrics, path=plots / PLOTS[0], upto=snapshot)
            stream_mrr_png(metrics=metrics, path=plots / PLOTS[1], upto=snapshot)
            client.log_artifacts(run_id, str(model_dir), MODEL_DIR)
            client.log_artifacts(run_id, str(plots), PLOTS_DIR)
    except BaseException:
        try:
            client.set_terminated(run_id, status="FAILED")
        except Exception:  # noqa: BLE001 - keep the original error; the run is redone next time anyway
            logger.exception("could not mark run %s as failed", run_id)
        raise
    client.set_terminated(run_id, status="FINISHED")
    logger.info("logged %s snapshot %d as MLflow run %s", lineage, snapshot, run_id)
    return run_id
