"""Data-parallel training with torch.distributed: every process takes a share of each batch, the gradients are
averaged, and the run learns what one process learns."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from evergraph.kg.engine.distributed import ProcessGroup, shard
from tests.two_processes import CLI, TORCHRUN, alone_and_on_two_processes, train_metrics

OPTIONS = ["--strategy", "lkge", "--model", "transe", "--dim", "32", "--max-epochs", "12", "--eval-every", "4"]
OPTIONS += ["--patience", "2", "--checkpoint-every", "4", "--seed", "0", "--device", "cpu", "--quiet"]


def test_shares_cover_every_row_once() -> None:
    rows = torch.arange(11)
    shares = [shard(rows, ProcessGroup(rank=r, world_size=3)) for r in range(3)]
    assert sorted(torch.cat(shares).tolist()) == rows.tolist()
    assert [len(s) for s in shares] == [4, 4, 3]
    assert shard(rows, None) is rows


@pytest.mark.slow  # two trainings, one of them a 2-process torchrun job
def test_two_processes_learn_what_one_process_learns(example_data: Path, tmp_path: Path) -> None:
    rank0, single = alone_and_on_two_processes(data=example_data, tmp_path=tmp_path, options=OPTIONS)
    assert torch.allclose(rank0["entity"], single["entity"], atol=1e-3)


ENTITY = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "lkge" / "ENTITY"


@pytest.mark.slow  # two trainings on ENTITY's first snapshot (reduced: dim 64, at most 20 epochs)
def test_two_processes_reach_the_entity_snapshot_0_mrr_of_one(tmp_path: Path) -> None:
    if not (ENTITY / "0" / "train.txt").is_file():
        pytest.skip(f"the LKGE benchmark data is not at {ENTITY} (../shared/data/lkge/ENTITY)")
    options = ["--strategy", "lkge", "--model", "transe", "--dim", "64", "--max-epochs", "20", "--eval-every", "5"]
    options += ["--seed", "0", "--device", "cpu", "--quiet", "--upto", "0", "--data", str(ENTITY)]
    one = train_metrics([*CLI, *options, "--out", str(tmp_path / "one")], tmp_path / "one")["snapshots"][0]
    two = train_metrics([*TORCHRUN, *options, "--out", str(tmp_path / "two")], tmp_path / "two")["snapshots"][0]
    assert abs(two["stream"]["mrr"] - one["stream"]["mrr"]) < 0.01, (one["stream"], two["stream"])
