"""Register task: log a snapshot's MLflow run and register it as one model version (idempotent)."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from evergraph.kg.knowledge.bundle_trust import CHECK_FILES, TRUST_FILES
from evergraph.kg.store.bundle_writer import write_bundle
from evergraph.kg.store.home import EvergraphHome
from evergraph.registry import log_snapshot_run
from evergraph.registry.pyfunc import log_knowledge_model
from evergraph.tasks.common import IO_RETRIES, IO_RETRY_DELAYS, open_registry, retry_unless_final


@task(
    name="register",
    task_run_name="register-snapshot-{snapshot}",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_unless_final,
)
def register_snapshot(
    *,
    home: str | None,
    registry: dict[str, Any],
    lineage: str,
    source: str,
    run_dir: str,
    snapshot: int,
    parent_version: str | None,
    run_id: str | None = None,
    superseded: bool = False,
) -> dict[str, Any]:
    """Log ``snapshot``'s run (params, per-epoch metrics, dataset, weights, vocabularies, index, plots) and
    register it (completing the run ``run_id`` the train task opened when training started; default None: a new
    run); a snapshot already registered returns its existing version. The version's serving bundle is written
    into the home (promotion then only switches the pointer to it) and logged as the version's pyfunc model
    (``knowledge/``, the version's source), both skipped when already there. Returns ``version``, ``run_id``,
    ``run_url`` and ``plot_urls`` (for the Prefect UI)."""
    reg = open_registry(home=home, registry=registry)
    existing = reg.find_version(lineage=lineage, snapshot=snapshot)
    if existing is not None:
        run_id, version = existing.run_id, existing.version
        get_run_logger().info("snapshot %d is already version %s; not registering again", snapshot, version)
    else:
        run_id = log_snapshot_run(
            client=reg.client,
            experiment_id=reg.experiment_id,
            run_dir=run_dir,
            snapshot=snapshot,
            lineage=lineage,
            source=source,
            run_id=run_id,
        )
        version = reg.register(
            run_id=run_id,
            lineage=lineage,
            snapshot=snapshot,
            content_hash=reg.run_content_hash(run_id),
            parent_version=parent_version,
        ).version
        get_run_logger().info("snapshot %d registered as %s version %s", snapshot, reg.model_name, version)
    bundle = write_bundle(
        run_dir=run_dir,
        snapshot=snapshot,
        dest=EvergraphHome.resolve(home).bundle_dir(version),
        version=version,
        extra={"lineage": lineage},
        # mined rules and the plausibility filter travel with the bundle; a bundle the same run supersedes
        # (``superseded``, default False) carries only the filter the next snapshot's check needs
        extras=CHECK_FILES if superseded else TRUST_FILES,
    )
    log_knowledge_model(client=reg.client, run_id=run_id, bundle=bundle)
    return {
        "version": version,
        "run_id": run_id,
        "run_url": reg.run_url(run_id),
        "plot_urls": reg.plot_urls(run_id),
    }
