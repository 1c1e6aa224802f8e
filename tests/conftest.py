"""Shared fixtures: a small example growing KG and a fast training configuration."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

# Prefect reads its settings when first imported: keep its home inside the project, offline and patient.
_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PREFECT_HOME", str(_ROOT / ".pytest-prefect"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "kg,registry")
os.environ.pop("PREFECT_API_URL", None)  # never talk to a server outside the tests
os.environ.pop("EVERGRAPH_HOME", None)

import pytest  # noqa: E402
import torch  # noqa: E402

from kg.config import ModelConfig, RunConfig, TrainConfig  # noqa: E402
from kg.example import write_example_dataset  # noqa: E402

pytest_plugins = ["tests.fake_openai"]

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


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A temporary Prefect database and API for the whole session (started on first use)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
