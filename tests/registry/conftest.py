"""One small trained run directory and one temporary MLflow store, shared by the registry tests.

MLflow's first use of a new SQLite database runs its migrations (several seconds), so the store is made once
per session; tests that move aliases use their own registered model name to stay independent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from evergraph.kg.engine.lifelong import LifelongRun
from evergraph.kg.engine.run_files import load_model_checkpoint
from evergraph.kg.store.index import EntityIndex
from evergraph.registry import RegistryConfig, log_snapshot_run
from tests.conftest import fast_config

LINEAGE = "demo"


@pytest.fixture(scope="session")
def run_dir(example_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Snapshots 0 and 1 learned briefly, plus a FAISS index for snapshot 1 (none for snapshot 0)."""
    out = tmp_path_factory.mktemp("registry") / "run"
    config = fast_config("lkge", max_epochs=2, eval_every=1, patience=1)  # learning quality does not matter here
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: on a busy machine 2 OpenMP threads wait on each other (100x slower)
    try:
        LifelongRun(data=example_data, out=out, config=config, show_progress=False).run(upto=1)
    finally:
        torch.set_num_threads(threads)
    model, _ = load_model_checkpoint(out / "checkpoints" / "snapshot-1.pt")
    EntityIndex.build(model).save(out / "indexes" / "snapshot-1.faiss")
    return out


@pytest.fixture(scope="session")
def metrics(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="session")
def logged(run_dir: Path, tracking_uri: str) -> dict[int, str]:
    """Run ids of snapshots 0 and 1 of lineage ``demo``, logged once."""
    config = RegistryConfig(tracking_uri=tracking_uri)
    return {n: log_snapshot_run(run_dir=run_dir, snapshot=n, lineage=LINEAGE, config=config) for n in (0, 1)}


@pytest.fixture
def config(tracking_uri: str, request: pytest.FixtureRequest) -> RegistryConfig:
    """The shared store, with a registered model of this test's own."""
    return RegistryConfig(tracking_uri=tracking_uri, registered_model=f"m-{request.node.name}")
