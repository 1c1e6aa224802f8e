"""A pipeline killed (SIGKILL, whole process group) mid-way and started again ends with one version per snapshot."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from evergraph.kg.store.home import EvergraphHome
from evergraph.registry import ModelRegistry, RegistryConfig
from tests.conftest import wait_for
from tests.flows.test_lifelong import small_source

ROOT = Path(__file__).resolve().parents[2]


def run_command(source: Path, home: Path) -> list[str]:
    return [
        sys.executable, "-m", "evergraph.flows.cli", "run", "--data", str(source), "--home", str(home),
        "--max-epochs", "10", "--dim", "32", "--device", "cpu", "--quiet",
    ]  # fmt: skip


def environment(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    return env


@pytest.mark.slow
def test_killed_run_resumes_to_one_version_per_snapshot(example_data: Path, tmp_path: Path) -> None:
    source = small_source(example_data, tmp_path / "source", snapshots=3)
    home = tmp_path / "home"
    process = subprocess.Popen(
        run_command(source, home),
        cwd=ROOT,
        env=environment(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    # kill it once snapshot 1 is trained (its registration, gate or snapshot 2 may be half done)
    trained = lambda: bool(list(home.glob("runs/*/checkpoints/snapshot-1.pt")))  # noqa: E731
    assert wait_for(lambda: trained() or process.poll() is not None, timeout=300), "snapshot 1 never finished"
    assert process.poll() is None, "the run ended before it could be interrupted"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()

    done = subprocess.run(
        run_command(source, home), cwd=ROOT, env=environment(tmp_path), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    registry = ModelRegistry(config=RegistryConfig(), home=EvergraphHome.resolve(home))
    versions = registry.versions()
    assert sorted(v.snapshot for v in versions) == [0, 1, 2]
    assert registry.champion() is not None
    assert "champion: version" in done.stdout
