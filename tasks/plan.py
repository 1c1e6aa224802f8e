"""Plan task: which snapshots of a source still need work, by content hash against the registry."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from evergraph.kg.errors import HistoryChangedError
from evergraph.tasks.common import IO_RETRIES, IO_RETRY_DELAYS, open_registry, retry_unless_final


@task(
    name="plan",
    task_run_name="plan",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_unless_final,
)
def plan_snapshots(
    *, home: str | None, registry: dict[str, Any], lineage: str, source: str, snapshots: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """For each snapshot: ``todo`` = ``learn`` (no version yet), ``gate`` (registered but the promotion
    decision was never recorded: a run stopped in between) or ``done``; with the existing ``version``.

    Raises :class:`~evergraph.kg.errors.HistoryChangedError` (final) when a registered snapshot's content changed,
    before any work is done.
    """
    logger = get_run_logger()
    reg = open_registry(home=home, registry=registry)
    plan = []
    for snap in snapshots:
        existing = reg.find_version(lineage=lineage, snapshot=snap["snapshot"])
        if existing is not None and existing.content_hash != snap["content_hash"]:
            raise HistoryChangedError(
                f"snapshot {snap['snapshot']} of {source} changed since it was registered as version "
                f"{existing.version} (content hash {existing.content_hash[:12]}… now {snap['content_hash'][:12]}…); "
                "history is append-only: restore the original files, or add the change as a new snapshot"
            )
        if existing is None:
            todo = "learn"
        elif existing.gate is not None:
            todo = "done"
        else:
            todo = "gate"
        plan.append({**snap, "todo": todo, "version": None if existing is None else existing.version})
    done = [p["snapshot"] for p in plan if p["todo"] == "done"]
    if done:
        logger.info("snapshot(s) %s already registered with unchanged content; nothing new for them", done)
    return plan
