"""What `evergraph run` prints (the main job of `make demo`), on a tiny setting: one line per event a person cares
about, nothing twice, no library chatter."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from evergraph.flows.cli import PREFECT_DEFAULTS, main
from tests.flows.test_lifelong import small_source


@pytest.mark.slow
def test_run_prints_one_line_per_event(
    example_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("PREFECT_HOME", "EVERGRAPH_HOME", *PREFECT_DEFAULTS):  # `run` sets them: restore them after
        monkeypatch.setenv(key, os.environ.get(key, "-"))
        if os.environ[key] == "-":
            monkeypatch.delenv(key)
    source = small_source(example_data, tmp_path / "source", snapshots=2)
    argv = ["run", "--data", str(source), "--home", str(tmp_path / "home"), "--max-epochs", "2", "--dim", "8"]
    assert main([*argv, "--quiet"]) == 0
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if line.strip()]
    text = "\n".join(lines)
    assert len(lines) < 30, text  # 2 snapshots here; the 5 of the demo stay under 60
    for noise in ("Finished in state", "AVX2", "UserWarning", "Downloading artifacts", "policies", "flow run id"):
        assert noise not in text, noise
    repeated = [line for line, n in Counter(lines).items() if n > 1 and any(c.isalnum() for c in line)]
    assert not repeated, repeated
    for snapshot in (0, 1):
        assert sum(f"snapshot {snapshot} learned:" in line for line in lines) == 1, text
        assert sum(line.startswith(f"snapshot {snapshot}: version") for line in lines) == 1, text
    assert "champion: version" in text
