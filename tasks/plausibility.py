"""Plausibility task: before a snapshot is learned, the champion checks its new facts (issue 10, policy ``flag``).

The report (one row per new fact: head, relation, tail, probability, reason) is kept in the home
(:func:`evergraph.kg.knowledge.plausibility.report_path`), published as a Prefect table artifact (suspects first)
and logged to the snapshot's MLflow run by :func:`log_plausibility_report`.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from evergraph.kg.engine.atomic import write_json
from evergraph.kg.errors import BundleError, PlausibilityError
from evergraph.kg.knowledge.plausibility import (
    check_labelled,
    load_or_fit,
    report_path,
    snapshot_facts,
)
from evergraph.kg.store.bundle import load_champion
from evergraph.kg.store.home import EvergraphHome
from evergraph.tasks.artifacts import artifact_key
from evergraph.tasks.common import IO_RETRIES, IO_RETRY_DELAYS, open_registry, retry_unless_final

MAX_TABLE_ROWS = 500
"""The Prefect table shows at most this many facts (suspects first); the full report is in MLflow and the home."""


@task(name="check-plausibility", task_run_name="check-plausibility-snapshot-{snapshot}")
def check_snapshot_facts(
    *, home: str | None, source: str, snapshot: int, lineage: str, quarantine: str = "flag"
) -> dict[str, Any] | None:
    """Score every new fact of ``snapshot`` against the champion (``quarantine="off"``: do nothing). Returns a
    summary (``checked``, ``suspects``, ``champion``, ``report``: the report's path) or ``None`` without a
    champion (the first snapshot) or when off."""
    logger = get_run_logger()
    if quarantine == "off":
        return None
    if quarantine == "hold":
        raise PlausibilityError(
            "--quarantine hold is not available yet (suspects would have to be kept out of training); use flag, "
            "which learns everything and reports the suspects"
        )
    root = EvergraphHome.resolve(home)
    try:
        bundle = load_champion(root)
    except BundleError as error:
        logger.info("no champion to check snapshot %d against yet (%s)", snapshot, error)
        return None
    plausibility = load_or_fit(bundle, home_root=root.root, data=source)
    rows = check_labelled(bundle, plausibility, snapshot_facts(source, snapshot))
    suspects = [row for row in rows if row["suspect"]]
    path = report_path(root.root, lineage, snapshot)
    summary = {
        "snapshot": snapshot,
        "champion": bundle.version,
        "policy": quarantine,
        "checked": len(rows),
        "scored": sum(row["scored"] in ("full", "known") for row in rows),
        "suspects": len(suspects),
        "report": str(path),
    }
    write_json(path, {**summary, "facts": rows})
    ordered = suspects + [row for row in rows if not row["suspect"]]
    table = [
        {k: row[k] for k in ("head", "relation", "tail", "probability", "reason", "suspect")}
        for row in ordered[:MAX_TABLE_ROWS]
    ]
    create_table_artifact(
        table,
        key=artifact_key(lineage, "plausibility"),
        description=f"snapshot {snapshot}: {len(suspects)} suspect(s) of {len(rows)} new fact(s), checked against "
        f"champion version {bundle.version} (policy {quarantine}: learned anyway, reported here; suspects first, "
        f"at most {MAX_TABLE_ROWS} rows; the full report is the MLflow artifact plausibility/)",
    )
    logger.info(
        "snapshot %d: %d suspect fact(s) of %d checked against version %s",
        snapshot,
        len(suspects),
        len(rows),
        bundle.version,
    )
    return summary


@task(
    name="log-plausibility",
    task_run_name="log-plausibility-snapshot-{snapshot}",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_unless_final,
)
def log_plausibility_report(
    *, home: str | None, registry: dict[str, Any], run_id: str, snapshot: int, summary: dict[str, Any] | None
) -> None:
    """Log the plausibility report of ``snapshot`` to its MLflow run (``plausibility/``); nothing without one."""
    if summary is None:
        return
    reg = open_registry(home=home, registry=registry)
    reg.client.log_artifact(run_id, summary["report"], "plausibility")
