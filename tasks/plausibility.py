"""Plausibility tasks: before a snapshot is learned, the champion checks its new facts (issue 10), and with
``--quarantine hold`` the suspects are kept out of what the snapshot learns.

The report (one row per new fact: head, relation, tail, probability, reason) is kept in the home
(:func:`evergraph.kg.knowledge.plausibility.report_path`), published as a Prefect table artifact (suspects first)
and logged to the snapshot's MLflow run by :func:`log_plausibility_report`. :func:`quarantine_snapshot` writes the
curated copy of the snapshot the lineage learns instead (:mod:`evergraph.kg.store.quarantine`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from evergraph.kg.engine.atomic import write_json
from evergraph.kg.engine.events import events
from evergraph.kg.engine.sources import open_source
from evergraph.kg.errors import BundleError
from evergraph.kg.knowledge.plausibility import (
    check_labelled,
    load_or_fit,
    report_path,
    snapshot_facts,
)
from evergraph.kg.store.bundle import load_champion
from evergraph.kg.store.home import EvergraphHome
from evergraph.kg.store.quarantine import CuratedSource, QuarantineStore
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
    champion (the first snapshot) or when off. With ``hold`` the suspects are then held by
    :func:`quarantine_snapshot`."""
    logger = get_run_logger()
    if quarantine == "off":
        return None
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
    write_json(path, {**summary, "facts": rows}, indent=None)  # one line per fact would be slow to write
    ordered = suspects + [row for row in rows if not row["suspect"]]
    table = [
        {k: row[k] for k in ("head", "relation", "tail", "probability", "reason", "suspect")}
        for row in ordered[:MAX_TABLE_ROWS]
    ]
    policy = (
        "held out of training and of the known facts until released: evergraph quarantine list"
        if quarantine == "hold"
        else "learned anyway, reported here"
    )
    create_table_artifact(
        table,
        key=artifact_key(lineage, "plausibility"),
        description=f"snapshot {snapshot}: {len(suspects)} suspect(s) of {len(rows)} new fact(s), checked against "
        f"champion version {bundle.version} (policy {quarantine}: suspects {policy}; suspects first, "
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


@task(name="quarantine", task_run_name="quarantine-snapshot-{snapshot}")
def quarantine_snapshot(
    *,
    home: str | None,
    source: str,
    snapshot: int,
    lineage: str,
    run_dir: str,
    quarantine: str,
    checked: dict[str, Any] | None,
) -> dict[str, Any]:
    """The source ``snapshot`` is learned from (``source``: a path) and what was held. ``source`` itself unless the
    lineage holds facts (``quarantine="hold"``, or it held facts in an earlier run): then the curated copy in the
    home, snapshot ``snapshot`` written without the suspects of ``checked`` (the check's summary) and with the
    facts released since; ``held`` says how many were held (also logged and added to the report)."""
    root = EvergraphHome.resolve(home)
    curated = CuratedSource(root.root, lineage)
    if quarantine != "hold" and not curated.exists():
        return {"source": source, "held": 0, "snapshot": snapshot}
    report: dict[str, Any] | None = None
    suspects: list[dict[str, Any]] = []
    if quarantine == "hold" and checked is not None:
        report = json.loads(Path(checked["report"]).read_text(encoding="utf-8"))
        suspects = [row for row in report["facts"] if row["suspect"]]
    raw = open_source(source)
    result = curated.curate(
        items=raw.snapshots(upto=snapshot),
        snapshot=snapshot,
        hold=suspects,
        champion=None if checked is None else checked["champion"],
        store=QuarantineStore(root.root),
        names=raw.names(),
    )
    curated.point_run(run_dir)
    if report is not None and checked is not None:
        write_json(Path(checked["report"]), {**report, "held": result["held"]}, indent=None)
    if not result["resumed"]:
        events.info(
            "snapshot %d: %d suspect fact(s) held out of training (`evergraph quarantine list`), %d released "
            "fact(s) learned, %d rejected fact(s) retracted",
            snapshot,
            result["held"],
            result["released"],
            result["rejected"],
        )
    return {**result, "source": str(curated.source)}


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
