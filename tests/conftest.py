"""Shared fixtures: a small example growing KG and a fast training configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kg.config import ModelConfig, RunConfig, TrainConfig
from kg.example import write_example_dataset

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def example_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example KG at half scale (about 290 entities, 2.6k facts over 5 snapshots)."""
    return write_example_dataset(tmp_path_factory.mktemp("example") / "data", seed=0, scale=0.5)


def fast_config(strategy: str = "lkge", **train: object) -> RunConfig:
    """Small and quick, but enough to learn the example KG."""
    settings = {"max_epochs": 60, "eval_every": 5, "patience": 2, "checkpoint_every": 5, "seed": 0, "device": "cpu"}
    settings.update(train)
    return RunConfig(strategy=strategy, model=ModelConfig(dim=32), train=TrainConfig(**settings))
