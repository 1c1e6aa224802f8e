"""The ``evergraph`` command: pipeline commands beside the engine's, and Prefect's environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from evergraph.flows.cli import build_parser, prefect_environment
from evergraph.kg.store.home import EvergraphHome


def test_pipeline_and_engine_commands_share_one_parser() -> None:
    parser = build_parser()
    assert parser.parse_args(["run", "--max-epochs", "3"]).max_epochs == 3
    assert parser.parse_args(["rollback", "4"]).version == "4"
    assert parser.parse_args(["up", "--no-deploy"]).no_deploy
    assert parser.parse_args(["train", "--data", "d", "--out", "o"]).strategy == "lkge"


def test_prefect_home_is_created_inside_a_new_nested_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_HOME", raising=False)
    home = EvergraphHome.resolve(tmp_path / "a" / "b" / "home")
    env = prefect_environment(home)
    assert env["PREFECT_HOME"] == str(home.prefect_home)
    assert home.prefect_home.is_dir()  # the ephemeral API cannot start in a missing directory
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
