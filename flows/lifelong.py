"""The lifelong pipeline: every snapshot of a source not processed yet, in order, one subflow each.

Per snapshot: train (continuing the lineage's model) -> in parallel, build the FAISS index and evaluate
against the champion -> register an MLflow model version -> publish UI artifacts -> promotion gate.
Re-running on the same snapshots creates nothing new; a changed snapshot is refused before any work.
"""

from __future__ import annotations

from typing import Any

import torch
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from evergraph.flows.lock import one_pipeline_per_home
from evergraph.flows.params import PipelineConfig, lineage_name
from evergraph.flows.runners import make_task_runner
from evergraph.kg.engine.events import events
from evergraph.kg.engine.interactions import get_interaction
from evergraph.kg.engine.strategies import get_strategy
from evergraph.kg.store.bundle_writer import remove_stale_tmp
from evergraph.kg.store.quarantine import CuratedSource
from evergraph.tasks.artifacts import artifact_key, publish_snapshot, run_summary
from evergraph.tasks.common import open_registry
from evergraph.tasks.evaluate import submit_comparison
from evergraph.tasks.index import build_index
from evergraph.tasks.ingest import ingest_source
from evergraph.tasks.plan import plan_snapshots
from evergraph.tasks.plausibility import check_snapshot_facts, log_plausibility_report, quarantine_snapshot
from evergraph.tasks.promote import promote_version
from evergraph.tasks.register import register_snapshot
from evergraph.tasks.train import train_snapshot


@flow(name="evergraph-snapshot", flow_run_name="snapshot-{snapshot}", task_runner=ThreadPoolTaskRunner(max_workers=4))
def learn_snapshot(
    *,
    source: str,
    snapshot: int,
    lineage: str,
    run_dir: str,
    run_config: dict[str, Any],
    config: PipelineConfig,
    parent_version: str | None,
    superseded: bool = False,
) -> dict[str, Any]:
    """Train, index, evaluate, register and gate one snapshot; returns its version and alias. ``superseded``
    (default False): a later snapshot of the same run follows, so its bundle is served for moments at most and
    skips mining rules (mined on first use, should anyone ask)."""
    registry = config.registry.model_dump()
    checked = check_snapshot_facts(
        home=config.home, source=source, snapshot=snapshot, lineage=lineage, quarantine=config.quarantine
    )  # before learning: the champion cross-checks the new facts
    source = quarantine_snapshot(
        home=config.home,
        source=source,
        snapshot=snapshot,
        lineage=lineage,
        run_dir=run_dir,
        quarantine=config.quarantine,
        checked=checked,
    )["source"]  # with --quarantine hold: the curated copy without the held suspects
    entry = train_snapshot(
        source=source,
        run_dir=run_dir,
        config=run_config,
        snapshot=snapshot,
        lineage=lineage,
        show_progress=config.show_progress,
        home=config.home,
        registry=registry,  # the MLflow run opens now: per-epoch curves during training
    )
    index = build_index.submit(run_dir=run_dir, snapshot=snapshot, index=config.index.model_dump())
    comparison = submit_comparison(  # one task per test set: a Dask or Ray task runner spreads them
        home=config.home, source=source, run_dir=run_dir, snapshot=snapshot, lineage=lineage
    )
    registered = register_snapshot(
        home=config.home,
        registry=registry,
        lineage=lineage,
        source=source,
        run_dir=run_dir,
        snapshot=snapshot,
        parent_version=parent_version,
        run_id=entry.get("mlflow_run_id"),
        superseded=superseded,
        wait_for=[index],
    )
    log_plausibility_report(
        home=config.home, registry=registry, run_id=registered["run_id"], snapshot=snapshot, summary=checked
    )
    published = publish_snapshot.submit(
        run_dir=run_dir,
        snapshot=snapshot,
        lineage=lineage,
        source=source,
        version=registered["version"],
        parent_version=parent_version,
        run_url=registered["run_url"],
        plot_urls=registered["plot_urls"],
    )
    decision = promote_version(
        home=config.home,
        registry=registry,
        lineage=lineage,
        run_dir=run_dir,
        snapshot=snapshot,
        version=registered["version"],
        comparison=comparison.result(),
        promote_anyway=config.promote_anyway,
    )
    published.result()  # a failed artifact task fails the snapshot instead of passing unnoticed
    return {
        "snapshot": snapshot,
        "version": registered["version"],
        "alias": decision["alias"],
        "reasons": decision["reasons"],
        "stream_mrr": entry["stream"]["mrr"],
        "epochs": entry["epochs"],
        "run_url": registered["run_url"],
        "flow_run_id": flow_run.id,
    }


@flow(name="evergraph-lifelong", flow_run_name="lifelong-{strategy}-{model}")
@one_pipeline_per_home  # a manual run and a scheduled one on the same home take turns
def lifelong_pipeline(
    source: str, strategy: str = "lkge", model: str = "transe", config: PipelineConfig | None = None
) -> dict[str, Any]:
    """Learn every snapshot of ``source`` (``DIR/<n>/{train,valid,test}.txt``) not learned yet with ``strategy``
    (default ``lkge``) and ``model`` (default ``transe``); ``config`` (default ``PipelineConfig()``) holds the
    home, training options, index and registry settings. Returns a summary with the champion version."""
    logger = get_run_logger()
    config = config or PipelineConfig()
    if config.torch_threads is not None:
        torch.set_num_threads(config.torch_threads)
    run_config = config.run_config(strategy=strategy, model=model)
    get_strategy(run_config)  # unknown names fail before any work
    get_interaction(model)
    lineage = lineage_name(source=source, config=run_config)
    home = config.evergraph_home()
    remove_stale_tmp(home.bundles)  # half-written bundles of a killed run
    run_dir = str(home.run_dir(lineage))
    registry = config.registry.model_dump()

    snapshots = ingest_source(source=source)
    snapshots = CuratedSource(home.root, lineage).planned(snapshots, source=source)  # held facts: curated hashes
    plan = plan_snapshots(home=config.home, registry=registry, lineage=lineage, source=source, snapshots=snapshots)
    todo = [p for p in plan if p["todo"] != "done"]
    if todo:
        events.info("%s: %d snapshot(s), %d to learn", source, len(plan), len(todo))
    else:
        events.info("all %d snapshot(s) of %s are already registered: nothing new to do", len(plan), source)
    runner = make_task_runner(config.task_runner, config.max_workers, address=config.task_runner_address)
    subflow = learn_snapshot.with_options(task_runner=runner)
    results: dict[int, dict[str, Any]] = {}
    parent: str | None = None
    for step in plan:
        if step["todo"] == "done":
            parent = step["version"]
            results[step["snapshot"]] = {"snapshot": step["snapshot"], "version": step["version"], "alias": None}
            continue
        results[step["snapshot"]] = subflow(
            source=source,
            snapshot=step["snapshot"],
            lineage=lineage,
            run_dir=run_dir,
            run_config=run_config.model_dump(),
            config=config,
            parent_version=parent,
            superseded=step is not todo[-1],
        )
        parent = results[step["snapshot"]]["version"]

    models = open_registry(home=config.home, registry=registry)
    champion = models.champion()
    summary = {
        "lineage": lineage,
        "home": str(home.root),
        "created": [r for r in results.values() if r.get("alias") is not None],
        "unchanged": [r["snapshot"] for r in results.values() if r.get("alias") is None],
        "champion": None if champion is None else champion.version,
        "champion_snapshot": None if champion is None else champion.snapshot,
    }
    if summary["created"]:
        create_table_artifact(
            [{k: r[k] for k in ("snapshot", "version", "alias", "stream_mrr")} for r in summary["created"]],
            key=artifact_key(lineage, "summary"),
            description="model versions created by this run",
        )
    rows = []
    for snapshot, result in sorted(results.items()):
        if result.get("alias") is None:  # registered by an earlier run: its MLflow run, no new subflow
            found = models.find_version(lineage=lineage, snapshot=snapshot)
            run_url = None if found is None else models.run_url(found.run_id)
            result = {**result, "alias": "unchanged", "run_url": run_url}
        rows.append(result)
    create_markdown_artifact(
        run_summary(
            lineage=lineage,
            source=source,
            champion=summary["champion"],
            champion_snapshot=summary["champion_snapshot"],
            rows=rows,
        ),
        key=artifact_key(lineage, "run-summary"),
        description="the champion, and every snapshot's version with links to its run (model card, metrics, gate, "
        "plots) and its MLflow run",
    )
    logger.info(
        "%d new version(s), %d unchanged; champion is version %s",
        len(summary["created"]),
        len(summary["unchanged"]),
        summary["champion"],
    )
    return summary
