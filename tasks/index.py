"""Index task: the FAISS entity index of one snapshot's model."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from evergraph.kg.store.bundle_writer import build_snapshot_index
from evergraph.kg.store.index import IndexConfig
from evergraph.tasks.common import IO_RETRIES, IO_RETRY_DELAYS, retry_unless_final


@task(
    name="build-index",
    task_run_name="build-index-snapshot-{snapshot}",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_unless_final,
)
def build_index(*, run_dir: str, snapshot: int, index: dict[str, Any]) -> str:
    """Build and save the entity index of ``snapshot`` beside its checkpoint; returns the index path."""
    path = build_snapshot_index(run_dir=run_dir, snapshot=snapshot, config=IndexConfig.model_validate(index))
    get_run_logger().info("snapshot %d: entity index written to %s", snapshot, path)
    return str(path)
