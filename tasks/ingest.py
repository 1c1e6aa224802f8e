"""Ingest task: validate every snapshot of a source and name each by its content hash."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from evergraph.kg.engine.ingest import load_shared
from evergraph.tasks.common import IO_RETRIES, IO_RETRY_DELAYS, retry_unless_final


@task(
    name="ingest",
    task_run_name="ingest",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_unless_final,
)
def ingest_source(*, source: str) -> list[dict[str, Any]]:
    """Validate all snapshots under ``source`` (a :class:`~evergraph.kg.errors.SnapshotError` naming file and line is
    final) and describe each: ``snapshot``, ``content_hash``, fact and vocabulary counts, ingest report. The
    snapshots are read once per process while their files stay put (the ``evergraph run`` pre-flight check has
    usually read them already)."""
    kg = load_shared(source)
    found = [
        {
            "snapshot": s.index,
            "content_hash": s.content_hash,
            "train": int(s.train.shape[0]),
            "valid": int(s.valid.shape[0]),
            "test": int(s.test.shape[0]),
            "num_entities": s.num_entities,
            "num_relations": s.num_relations,
            "ingest": s.report.to_dict(),
        }
        for s in kg.snapshots
    ]
    get_run_logger().info("%s: %d valid snapshot(s)", source, len(found))
    return found
