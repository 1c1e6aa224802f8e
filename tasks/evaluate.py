"""Evaluate task: the new version against the champion on equal terms (the newest test set and the earlier ones),
for the promotion gate."""

from __future__ import annotations

import json
from typing import Any

from prefect import get_run_logger, task

from evergraph.kg.engine.comparison import compare_on_earlier_test_sets, compare_on_new_test_set
from evergraph.kg.engine.config import EvaluationConfig
from evergraph.kg.engine.evaluation import ranking_label
from evergraph.kg.engine.ingest import load_shared
from evergraph.kg.engine.run_files import RunPaths, load_model_checkpoint
from evergraph.kg.errors import BundleError
from evergraph.kg.store.bundle import load_champion_model
from evergraph.kg.store.home import EvergraphHome
from evergraph.tasks.common import IO_RETRIES, IO_RETRY_DELAYS, retry_unless_final


@task(
    name="evaluate-against-champion",
    task_run_name="evaluate-snapshot-{snapshot}-against-champion",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_unless_final,
)
def compare_with_champion(
    *, home: str | None, source: str, run_dir: str, snapshot: int, lineage: str | None = None
) -> dict[str, Any] | None:
    """MRR of the new version and of the champion (loaded from its serving bundle, not from MLflow) on the part
    of ``snapshot``'s test set the champion can score, and (under ``earlier``) per earlier test set, both ranked
    against the champion's entities; ``None`` when there is no champion to compare with, and
    ``{"cannot_compare": reason}`` when the champion knows entities or relations the new version lacks (the gate
    then does not promote); ``{"same_version": v}`` when ``lineage`` (default None: not checked) and ``snapshot``
    are what the pointer already serves (an interrupted promotion: nothing to compare)."""
    logger = get_run_logger()
    evergraph_home = EvergraphHome.resolve(home)
    if not evergraph_home.champion_pointer.exists():
        logger.info("no champion yet: nothing to compare snapshot %d with", snapshot)
        return None
    try:
        champion = load_champion_model(evergraph_home)  # the model only: no index, facts or calibration
    except BundleError as error:
        logger.warning("the champion's bundle cannot be loaded (%s); the new-test-set rule is skipped", error)
        return None
    served = (champion.manifest.get("extra") or {}).get("lineage"), champion.snapshot
    if lineage is not None and served == (lineage, snapshot):
        logger.warning(
            "the serving pointer already names this snapshot (version %s): an earlier run's promotion was "
            "interrupted; not comparing the version with itself",
            champion.version,
        )
        return {"same_version": champion.version, "champion_version": champion.version}
    new, _ = load_model_checkpoint(RunPaths(run_dir).snapshot_checkpoint(snapshot))
    if champion.model.interaction_name != new.interaction_name or champion.model.entity.shape[1] != new.entity.shape[1]:
        logger.info("the champion is a different kind of model; the new-test-set rule is skipped")
        return None
    if champion.model.num_entities > new.num_entities or champion.model.num_relations > new.num_relations:
        reason = (
            f"the champion (version {champion.version}) knows {champion.model.num_entities} entities and "
            f"{champion.model.num_relations} relations, the new version (snapshot {snapshot}) only "
            f"{new.num_entities} and {new.num_relations}: it cannot answer for everything the champion serves"
        )
        logger.warning("the gate cannot compare: %s", reason)
        return {"cannot_compare": reason, "champion_version": champion.version}
    kg = load_shared(source, upto=snapshot)
    # above the run's size threshold, both versions are ranked against the same fixed candidate samples
    stored = json.loads(RunPaths(run_dir).config.read_text()).get("evaluation", {})
    sample = EvaluationConfig.model_validate(stored).sample_for(champion.model.num_entities)
    result = compare_on_new_test_set(new=new, champion=champion.model, kg=kg, snapshot=snapshot, sample=sample)
    earlier = compare_on_earlier_test_sets(
        new=new,
        champion=champion.model,
        kg=kg,
        snapshot=snapshot,
        test_sets=range(min(champion.snapshot, snapshot - 1) + 1),
        sample=sample,
    )
    return {
        **result.to_dict(),
        "earlier": earlier.to_dict(),
        "champion_version": champion.version,
        "ranking": ranking_label(sample),
    }
