"""Data-parallel training with torch.distributed: every process takes a share of each batch, the gradients are
averaged, and the run learns what one process learns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from evergraph.kg.engine.distributed import ProcessGroup, shard

OPTIONS = ["--strategy", "lkge", "--model", "transe", "--dim", "32", "--max-epochs", "12", "--eval-every", "4"]
OPTIONS += ["--patience", "2", "--checkpoint-every", "4", "--seed", "0", "--device", "cpu", "--quiet"]


def test_shares_cover_every_row_once() -> None:
    rows = torch.arange(11)
    shares = [shard(rows, ProcessGroup(rank=r, world_size=3)) for r in range(3)]
    assert sorted(torch.cat(shares).tolist()) == rows.tolist()
    assert [len(s) for s in shares] == [4, 4, 3]
    assert shard(rows, None) is rows


def _train(command: list[str], out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow  # two trainings, one of them a 2-process torchrun job
def test_two_processes_learn_what_one_process_learns(example_data: Path, tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "evergraph.kg.service.cli", "train", "--data", str(example_data), "--upto", "1"]
    one = _train([*cli, "--out", str(tmp_path / "one"), *OPTIONS], tmp_path / "one")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    job = [*torchrun, "-m", "evergraph.kg.service.cli", *cli[3:], "--out", str(tmp_path / "two"), *OPTIONS]
    two = _train(job, tmp_path / "two")
    for alone, parallel in zip(one["snapshots"], two["snapshots"], strict=True):
        assert parallel["epochs"] == alone["epochs"]
        assert abs(parallel["stream"]["mrr"] - alone["stream"]["mrr"]) < 0.01
    # rank 1 kept its own run directory, and it learned the very same weights as rank 0
    rank0 = torch.load(tmp_path / "two" / "checkpoints" / "snapshot-1.pt", weights_only=True)["model"]
    rank1 = torch.load(tmp_path / "two" / "ranks" / "1" / "checkpoints" / "snapshot-1.pt", weights_only=True)["model"]
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    single = torch.load(tmp_path / "one" / "checkpoints" / "snapshot-1.pt", weights_only=True)["model"]
    assert torch.allclose(rank0["entity"], single["entity"], atol=1e-3)


ENTITY = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "lkge" / "ENTITY"


@pytest.mark.slow  # two trainings on ENTITY's first snapshot (reduced: dim 64, at most 20 epochs)
def test_two_processes_reach_the_entity_snapshot_0_mrr_of_one(tmp_path: Path) -> None:
    if not (ENTITY / "0" / "train.txt").is_file():
        pytest.skip(f"the LKGE benchmark data is not at {ENTITY} (../shared/data/lkge/ENTITY)")
    options = ["--strategy", "lkge", "--model", "transe", "--dim", "64", "--max-epochs", "20", "--eval-every", "5"]
    options += ["--seed", "0", "--device", "cpu", "--quiet", "--upto", "0", "--data", str(ENTITY)]
    cli = [sys.executable, "-m", "evergraph.kg.service.cli", "train", *options]
    one = _train([*cli, "--out", str(tmp_path / "one")], tmp_path / "one")["snapshots"][0]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    job = [*torchrun, "-m", "evergraph.kg.service.cli", "train", *options, "--out", str(tmp_path / "two")]
    two = _train(job, tmp_path / "two")["snapshots"][0]
    assert abs(two["stream"]["mrr"] - one["stream"]["mrr"]) < 0.01, (one["stream"], two["stream"])
