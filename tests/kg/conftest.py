"""Fixtures of the knowledge tests: a trained example run and a home whose champion is one of its bundles."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kg.bundle import switch_pointer, write_bundle
from kg.home import EvergraphHome
from kg.lifelong import LifelongRun
from tests.conftest import fast_config


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
