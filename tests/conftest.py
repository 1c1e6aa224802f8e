"""Shared fixtures: a small example growing KG and a fast training configuration."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

# Prefect reads its settings when first imported: keep its home inside the project, offline and patient.
_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PREFECT_HOME", str(_ROOT / ".pytest-prefect"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "evergraph")
os.environ.pop("PREFECT_API_URL", None)  # never talk to a server outside the tests
os.environ.pop("EVERGRAPH_HOME", None)

import pytest  # noqa: E402
import torch  # noqa: E402

from evergraph.kg.engine.config import ModelConfig, RunConfig, TrainConfig  # noqa: E402
from evergraph.kg.engine.example import write_example_dataset  # noqa: E402
from evergraph.kg.engine.lifelong import LifelongRun  # noqa: E402
from evergraph.kg.store.bundle import Bundle  # noqa: E402
from evergraph.kg.store.bundle_writer import switch_pointer, write_bundle  # noqa: E402
from evergraph.kg.store.home import EvergraphHome  # noqa: E402

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


# -- knowledge: a trained example run and a home whose champion is one of its bundles


@pytest.fixture(scope="session")
def knowledge_run(example_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example KG learned up to snapshot 1 well enough that predictions mean something."""
    out = tmp_path_factory.mktemp("knowledge") / "run"
    config = fast_config("lkge", max_epochs=30, eval_every=5)
    LifelongRun(data=example_data, out=out, config=config, show_progress=False).run(upto=1)
    return out


@pytest.fixture(scope="session")
def knowledge_home_template(knowledge_run: Path, tmp_path_factory: pytest.TempPathFactory) -> EvergraphHome:
    """A home with bundles v1 (snapshot 0) and v2 (snapshot 1); the champion is v2. Never modify it: use
    ``knowledge_home`` for a private copy."""
    home = EvergraphHome(tmp_path_factory.mktemp("home") / "home")
    for version, snapshot in (("1", 0), ("2", 1)):
        write_bundle(run_dir=knowledge_run, snapshot=snapshot, dest=home.bundle_dir(version), version=version)
    switch_pointer(pointer=home.champion_pointer, bundle=home.bundle_dir("2"), version="2")
    return home


@pytest.fixture
def knowledge_home(knowledge_home_template: EvergraphHome, tmp_path: Path) -> EvergraphHome:
    """A private copy of the two-bundle home (tests may move its champion)."""
    root = tmp_path / "home"
    shutil.copytree(knowledge_home_template.root, root)
    return EvergraphHome(root)


@pytest.fixture(scope="session")
def champion_bundle(knowledge_home_template: EvergraphHome) -> Path:
    """The v2 bundle (snapshot 1) of the template home, read-only."""
    return knowledge_home_template.bundle_dir("2")


# -- helpers of the knowledge tests


def born_person(bundle: Bundle, *, born: bool = True) -> str:
    """The name of a person of ``bundle`` whose birthplace the graph knows (``born=False``: does not know)."""
    relation = 2 * bundle.relations.id("born_in")
    for label, name in bundle.entity_names.items():
        if label.startswith("person/") and label in bundle.entities:
            if (len(bundle.facts.answers(bundle.entities.id(label), relation)) > 0) == born:
                return name
    raise AssertionError(f"no person {'with' if born else 'without'} a known birthplace")


def wait_for(condition: Callable[[], bool], *, timeout: float = 10.0) -> bool:
    """Poll ``condition`` every 20 ms until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def restored_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The `evergraph` commands export Prefect's settings into the environment; put every one back after the
    test."""
    from evergraph.flows.cli import PREFECT_DEFAULTS

    for key in ("PREFECT_HOME", "EVERGRAPH_HOME", *PREFECT_DEFAULTS):
        if key in os.environ:
            monkeypatch.setenv(key, os.environ[key])
        else:
            monkeypatch.delenv(key, raising=False)
