"""Retry rules: validation errors are final, transient failures are retried."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect import flow
from prefect.client.orchestration import get_client

from evergraph.kg.engine.ingest import GrowingKG
from evergraph.kg.errors import SnapshotError
from evergraph.tasks.ingest import ingest_source


def run_count(task_run_id) -> int:
    with get_client(sync_client=True) as client:
        return client.read_task_run(task_run_id).run_count


def write_snapshot(directory: Path, train: str) -> None:
    directory.mkdir(parents=True)
    (directory / "train.txt").write_text(train)
    (directory / "valid.txt").write_text("")
    (directory / "test.txt").write_text("")


@flow
def ingest_flow(source: str) -> dict:
    """The task's outcome as plain data (a flow returning a failed state would fail itself)."""
    state = ingest_source(source=source, return_state=True)
    outcome = {"task_run_id": state.state_details.task_run_id, "failed": state.is_failed()}
    try:
        outcome["result"] = state.result()
    except Exception as error:  # noqa: BLE001 - inspected by the test
        outcome["error"] = error
    return outcome


def test_a_validation_error_is_not_retried(tmp_path: Path) -> None:
    write_snapshot(tmp_path / "0", "a\tr\tb\nc\tr\n")
    outcome = ingest_flow(str(tmp_path))
    assert outcome["failed"]
    assert isinstance(outcome["error"], SnapshotError)
    assert "train.txt:2" in str(outcome["error"])
    assert run_count(outcome["task_run_id"]) == 1  # retries=2, but the error is final


def test_a_transient_failure_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_snapshot(tmp_path / "0", "a\tr\tb\n")
    load = GrowingKG.load
    calls: list[int] = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk hiccup")
        return load(*args, **kwargs)

    monkeypatch.setattr(GrowingKG, "load", flaky)
    outcome = ingest_flow(str(tmp_path))
    assert not outcome["failed"]
    assert [s["snapshot"] for s in outcome["result"]] == [0]
    assert run_count(outcome["task_run_id"]) == 2
