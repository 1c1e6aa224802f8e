import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from evergraph.kg.engine.lifelong import LifelongRun
from evergraph.kg.engine.run_files import RunPaths, find_entry, load_model_checkpoint, read_entry
from evergraph.kg.engine.vocab import Vocabulary
from evergraph.kg.errors import CheckpointError, SnapshotError, UnknownComponentError
from tests.conftest import fast_config, wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_vocabularies_only_grow_across_snapshots(example_data, tmp_path):
    run = LifelongRun(
        data=example_data, out=tmp_path, config=fast_config("finetune", max_epochs=5), show_progress=False
    )
    run.run(upto=0)
    first = Vocabulary.load(tmp_path / "vocab" / "entities.tsv")
    run.run(upto=2)
    later = Vocabulary.load(tmp_path / "vocab" / "entities.tsv")
    assert len(later) > len(first) and first.is_prefix_of(later)
    model, _ = load_model_checkpoint(tmp_path / "checkpoints" / "snapshot-2.pt")
    assert model.num_entities == len(later)


def test_a_finished_run_is_not_relearned(example_data, tmp_path):
    config = fast_config("finetune", max_epochs=5)
    first = LifelongRun(data=example_data, out=tmp_path, config=config, show_progress=False).run(upto=1)
    stamp = (tmp_path / "checkpoints" / "snapshot-1.pt").stat().st_mtime_ns
    again = LifelongRun(data=example_data, out=tmp_path, config=config, show_progress=False).run(upto=1)
    assert again == first
    assert (tmp_path / "checkpoints" / "snapshot-1.pt").stat().st_mtime_ns == stamp


def test_a_different_config_for_the_same_out_is_refused(example_data, tmp_path):
    LifelongRun(data=example_data, out=tmp_path, config=fast_config("finetune", max_epochs=5), show_progress=False).run(
        upto=0
    )
    with pytest.raises(CheckpointError, match="different configuration"):
        LifelongRun(data=example_data, out=tmp_path, config=fast_config("lkge", max_epochs=5), show_progress=False).run(
            upto=0
        )


def test_changed_history_is_refused(example_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(example_data, data)
    out = tmp_path / "run"
    config = fast_config("finetune", max_epochs=5)
    LifelongRun(data=data, out=out, config=config, show_progress=False).run(upto=0)
    lines = (data / "0" / "train.txt").read_text().splitlines()
    (data / "0" / "train.txt").write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(CheckpointError, match="changed since this run learned it"):
        LifelongRun(data=data, out=out, config=config, show_progress=False).run(upto=1)


def test_bad_snapshot_stores_nothing(example_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(example_data, data)
    with (data / "1" / "valid.txt").open("a") as handle:
        handle.write("only\ttwo\n")
    out = tmp_path / "run"
    with pytest.raises(SnapshotError, match=r"valid.txt:\d+: expected 3 tab-separated fields"):
        LifelongRun(data=data, out=out, config=fast_config("finetune", max_epochs=5), show_progress=False).run()
    assert not out.exists()


def _train_command(data: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "evergraph.kg.service.cli",
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--strategy",
        "lkge",
        "--dim",
        "16",
        "--max-epochs",
        "20",
        "--checkpoint-every",
        "1",
        "--eval-every",
        "5",
        "--patience",
        "2",
        "--device",
        "cpu",
        "--upto",
        "1",
        "--quiet",
    ]


@pytest.mark.slow  # three training processes
def test_a_killed_run_resumes_to_the_same_result(example_data, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference"
    subprocess.run(_train_command(example_data, reference), check=True, env=env, capture_output=True)

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        _train_command(example_data, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    in_progress = out / "checkpoints" / "in-progress.pt"
    # kill it inside snapshot 1, after a periodic checkpoint
    checkpointed = lambda: in_progress.exists() and (out / "metrics.json").exists()  # noqa: E731
    wait_for(lambda: proc.poll() is not None or checkpointed(), timeout=120)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(json.loads((out / "metrics.json").read_text())["snapshots"]) == 1

    subprocess.run(_train_command(example_data, out), check=True, env=env, capture_output=True)
    got = json.loads((out / "metrics.json").read_text())
    want = json.loads((reference / "metrics.json").read_text())
    assert [s["snapshot"] for s in got["snapshots"]] == [0, 1]
    for name in ("entities.tsv", "relations.tsv"):
        assert (out / "vocab" / name).read_text() == (reference / "vocab" / name).read_text()
    for a, b in zip(got["snapshots"], want["snapshots"], strict=True):
        assert a["epochs"] == b["epochs"]
        assert a["stream"] == pytest.approx(b["stream"], abs=1e-6)
    assert not in_progress.exists()


@pytest.mark.parametrize(("field", "value"), [("protocol", "paper"), ("strategy", "ewc")])
def test_unknown_names_fail_before_any_work(example_data, tmp_path, field, value):
    config = fast_config("finetune").model_copy(update={field: value})
    with pytest.raises(UnknownComponentError, match="choose one of|known"):
        LifelongRun(data=example_data, out=tmp_path / "run", config=config, show_progress=False).run()
    assert not (tmp_path / "run").exists()


def test_entries_are_found_by_snapshot_and_a_missing_one_is_named(example_data, tmp_path):
    out = tmp_path / "run"
    LifelongRun(data=example_data, out=out, config=fast_config("finetune", max_epochs=2), show_progress=False).run(
        upto=0
    )
    entry = read_entry(RunPaths(out), 0)
    assert entry["snapshot"] == 0 and "stream" in entry
    assert find_entry({"snapshots": [entry]}, 1) is None
    with pytest.raises(CheckpointError, match=r"snapshot 1 is not finished .*finished: \[0\]"):
        read_entry(RunPaths(out), 1)
