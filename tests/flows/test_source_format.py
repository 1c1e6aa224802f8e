"""``--format`` of `evergraph train` and `evergraph run`: checked before any work, recorded for every reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evergraph.flows.cli import main


def exports(root: Path) -> Path:
    """Two N-Triples exports, and a numbered folder ``0/`` that makes auto-detection read the folder as lkge."""
    root.mkdir(parents=True)
    rows = [f"<http://e/{i % 30}> <http://r/{i % 4}> <http://e/{(i * 7 + 1) % 30}> .\n" for i in range(240)]
    (root / "2026-01-01.nt").write_text("".join(rows[:200]))
    (root / "2026-02-01.nt").write_text("".join(rows))
    return root


def argv(command: str, data: Path, tmp_path: Path, *extra: str) -> list[str]:
    where = ["--out", str(tmp_path / "out")] if command == "train" else ["--home", str(tmp_path / "home")]
    return [command, "--data", str(data), *where, "--quiet", *extra]


@pytest.mark.parametrize("command", ["train", "run"])
def test_an_unknown_format_is_refused_while_parsing(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv(command, exports(tmp_path / "data"), tmp_path, "--format", "rdf"))
    assert caught.value.code == 2 and "invalid choice: 'rdf'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "home").exists()


@pytest.mark.parametrize("command", ["train", "run"])
def test_a_folder_that_cannot_be_read_as_the_format_is_refused_before_any_work(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = exports(tmp_path / "data")
    assert main(argv(command, data, tmp_path, "--format", "lkge")) == 2
    out = capsys.readouterr().out
    assert str(data) in out and "--format lkge needs snapshot folders" in out
    assert "Prefect" not in out and not (tmp_path / "out").exists()
    assert not (data / "source.json").exists()


def test_train_format_dumps_reads_the_exports_of_a_folder_detected_as_lkge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = exports(tmp_path / "data")
    (data / "0").mkdir()
    for split, rows in (("train", "a\tr\tb\nb\tr\tc\n"), ("valid", "a\tr\tc\n"), ("test", "b\tr\ta\n")):
        (data / "0" / f"{split}.txt").write_text(rows)
    extra = ("--format", "dumps", "--dim", "8", "--max-epochs", "2", "--device", "cpu")
    assert main(argv("train", data, tmp_path, *extra)) == 0
    assert f"format dumps recorded in {data / 'source.json'}" in capsys.readouterr().out.replace("\n", "")
    assert json.loads((data / "source.json").read_text()) == {"format": "dumps"}
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert len(metrics["snapshots"]) == 2  # the two exports, not the one numbered folder
