"""Evaluate task: the new version against the champion on equal terms (the newest test set and the earlier ones),
for the promotion gate."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from evergraph.kg.engine.comparison import compare_on_earlier_test_sets, compare_on_new_test_set
from evergraph.kg.engine.ingest import load_shared
from evergraph.kg.engine.run_files import RunPaths, load_model_checkpoint
from evergraph.kg.errors import BundleError
from evergraph.kg.store.bundle import load_champion
from evergraph.kg.store.home import EvergraphHome
from evergraph.tasks.common import IO_RETRIES, IO_RETRY_DELAYS, retry_unless_final


@task(
    name="evaluate-against-champion",
    task_run_name="evaluate-snapshot-{snapshot}-against-champion",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_unless_final,
)
def compare_with_champion(*, home: str | None, source: str, run_dir: str, snapshot: int) -> dict[str, Any] | None:
    """MRR of the new version and of the champion (loaded from its serving bundle, not from MLflow) on the part
    of ``snapshot``'s test set the champion can score, and (under ``earlier``) per earlier test set, both ranked
    against the champion's entities; ``None`` when there is no champion to compare with."""
    logger = get_run_logger()
    evergraph_home = EvergraphHome.resolve(home)
    if not evergraph_home.champion_pointer.exists():
        logger.info("no champion yet: nothing to compare snapshot %d with", snapshot)
        return None
    try:
        champion = load_champion(evergraph_home)
    except BundleError as error:
        logger.warning("the champion's bundle cannot be loaded (%s); the new-test-set rule is skipped", error)
        return None
    new, _ = load_model_checkpoint(RunPaths(run_dir).snapshot_checkpoint(snapshot))
    if champion.model.interaction_name != new.interaction_name or champion.model.entity.shape[1] != new.entity.shape[1]:
        logger.info("the champion is a different kind of model; the new-test-set rule is skipped")
        return None
    if champion.model.num_entities > new.num_entities or champion.model.num_relations > new.num_relations:
        logger.info("the champion comes from another lineage with a larger graph; the new-test-set rule is skipped")
        return None
    kg = load_shared(source, upto=snapshot)
    result = compare_on_new_test_set(new=new, champion=champion.model, kg=kg, snapshot=snapshot)
    earlier = compare_on_earlier_test_sets(
        new=new,
        champion=champion.model,
        kg=kg,
        snapshot=snapshot,
        test_sets=range(min(champion.snapshot, snapshot - 1) + 1),
    )
    return {**result.to_dict(), "earlier": earlier.to_dict(), "champion_version": champion.version}
