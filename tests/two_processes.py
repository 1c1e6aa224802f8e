"""Training the example graph alone and as a 2-process ``torchrun`` job, for the data-parallel tests of the dense
(``tests/kg/test_distributed.py``) and sparse (``tests/kg/test_sparse_training.py``) paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

CLI = [sys.executable, "-m", "evergraph.kg.service.cli", "train"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", *CLI[2:]]


def train_metrics(command: list[str], out: Path) -> dict:
    """Run ``command`` (one thread per process) and return the ``metrics.json`` it wrote in ``out``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


def alone_and_on_two_processes(*, data: Path, tmp_path: Path, options: list[str]) -> tuple[dict, dict]:
    """Train snapshots 0-1 of ``data`` with ``options`` in one process and in a 2-process job; check that both
    train the same epochs to stream MRRs within 0.01 and that the job's two ranks hold the very same weights.
    Returns the snapshot-1 weights ``(rank 0 of the job, the single process)``."""
    common = ["--data", str(data), "--upto", "1", *options]
    one = train_metrics([*CLI, *common, "--out", str(tmp_path / "one")], tmp_path / "one")
    two = train_metrics([*TORCHRUN, *common, "--out", str(tmp_path / "two")], tmp_path / "two")
    for alone, parallel in zip(one["snapshots"], two["snapshots"], strict=True):
        assert parallel["epochs"] == alone["epochs"]
        assert abs(parallel["stream"]["mrr"] - alone["stream"]["mrr"]) < 0.01
    # rank 1 kept its own run directory, and it learned the very same weights as rank 0
    rank0 = torch.load(tmp_path / "two" / "checkpoints" / "snapshot-1.pt", weights_only=True)["model"]
    rank1 = torch.load(tmp_path / "two" / "ranks" / "1" / "checkpoints" / "snapshot-1.pt", weights_only=True)["model"]
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    single = torch.load(tmp_path / "one" / "checkpoints" / "snapshot-1.pt", weights_only=True)["model"]
    return rank0, single
