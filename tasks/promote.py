"""Promotion tasks: the gate that decides the champion, and rollback. Both switch the serving bundle."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from evergraph.kg.engine.events import events
from evergraph.kg.engine.run_files import RunPaths, read_entry
from evergraph.kg.knowledge.bundle_trust import TRUST_FILES
from evergraph.kg.store.bundle import read_pointer
from evergraph.kg.store.bundle_writer import switch_pointer, write_bundle
from evergraph.kg.store.home import EvergraphHome
from evergraph.registry import decide
from evergraph.registry.gate import interrupted_promotion
from evergraph.tasks.artifacts import artifact_key
from evergraph.tasks.common import IO_RETRIES, IO_RETRY_DELAYS, open_registry, retry_unless_final
from evergraph.tasks.events import PROMOTED, ROLLED_BACK, emit_champion_event


def _serve(*, home: EvergraphHome, run_dir: str, snapshot: int, version: str, lineage: str) -> str:
    """Write the version's bundle (idempotent) and point serving at it."""
    bundle = write_bundle(
        run_dir=run_dir,
        snapshot=snapshot,
        dest=home.bundle_dir(version),
        version=version,
        extra={"lineage": lineage},
        extras=TRUST_FILES,  # mined rules and the plausibility filter travel with the bundle
    )
    switch_pointer(pointer=home.champion_pointer, bundle=bundle, version=version)
    return str(bundle)


def _per_set(mrrs: dict[Any, float] | None) -> dict[int, float] | None:
    """Per-test-set MRRs with int keys (they come back from a task result or JSON with str keys)."""
    return None if mrrs is None else {int(j): float(m) for j, m in mrrs.items()}


@task(
    name="promote",
    task_run_name="promote-version-{version}",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_unless_final,
)
def promote_version(
    *,
    home: str | None,
    registry: dict[str, Any],
    lineage: str,
    run_dir: str,
    snapshot: int,
    version: str,
    comparison: dict[str, Any] | None,
    promote_anyway: bool = False,
) -> dict[str, Any]:
    """Apply the gate: ``champion`` when the version does not forget (within the tolerance) and is not worse on
    the new test set, else ``challenger``; a gate that cannot compare (``comparison["cannot_compare"]``, or no
    rule compared anything) keeps the version ``challenger`` unless ``promote_anyway`` (default False) forces it.
    A markdown artifact explains the decision. A promoted version's bundle is written and the serving pointer
    switched before the alias moves; when an earlier run stopped in between (the pointer already names
    ``version``), the promotion is completed instead of judged again."""
    logger = get_run_logger()
    reg = open_registry(home=home, registry=registry)
    evergraph_home = EvergraphHome.resolve(home)
    champion = reg.champion()
    pointer = read_pointer(evergraph_home.champion_pointer)
    decision = interrupted_promotion(
        version=version,
        pointer_version=None if pointer is None else str(pointer["version"]),
        champion_version=None if champion is None else champion.version,
        new_snapshot=snapshot,
    )
    if decision is not None:
        logger.warning("%s", decision.reasons[0])
    else:
        champion_entry = None if champion is None else reg.version_metrics(champion.version)
        decision = decide(
            new_entry=read_entry(RunPaths(run_dir), snapshot),
            champion_entry=champion_entry,
            new_on_new=None if comparison is None else comparison.get("new_mrr"),
            champion_on_new=None if comparison is None else comparison.get("champion_mrr"),
            new_earlier=None if comparison is None else _per_set((comparison.get("earlier") or {}).get("new_mrr")),
            champion_earlier=None
            if comparison is None
            else _per_set((comparison.get("earlier") or {}).get("champion_mrr")),
            tolerance=reg.config.tolerance,
            cannot_compare=None if comparison is None else comparison.get("cannot_compare"),
            promote_anyway=promote_anyway,
        )
        if decision.forced:
            logger.warning("version %s is promoted with --promote-anyway: %s", version, "; ".join(decision.reasons))
    bundle = None
    if decision.promote:
        bundle = _serve(home=evergraph_home, run_dir=run_dir, snapshot=snapshot, version=version, lineage=lineage)
    reg.promote(version, decision)
    if decision.promote and (champion is None or champion.version != version):
        emit_champion_event(
            PROMOTED,
            model_name=reg.model_name,
            version=version,
            snapshot=snapshot,
            lineage=lineage,
            previous=None if champion is None else champion.version,
            reasons=list(decision.reasons),
        )
    create_markdown_artifact(
        decision.to_markdown(),
        key=artifact_key(lineage, "gate"),
        description=f"promotion gate for version {version}",
    )
    alias = "champion" if decision.promote else "challenger"
    logger.debug("version %s is now %s: %s", version, alias, "; ".join(decision.reasons))
    events.info("snapshot %d: version %s is %s (%s)", snapshot, version, alias, gate_summary(decision.numbers))
    forced = decision.forced
    return {"version": version, "alias": alias, "reasons": decision.reasons, "bundle": bundle, "forced": forced}


def gate_summary(numbers: dict[str, float | None]) -> str:
    """The gate's numbers in a few words: MRR of the new version vs the champion on the earlier test sets and on
    the new one (the gate artifact has the sentences)."""
    parts = []
    for what, new, old in (
        ("earlier test sets", "new_earlier_mrr", "champion_earlier_mrr"),
        ("new test set", "new_on_new", "champion_on_new"),
    ):
        if numbers.get(new) is not None and numbers.get(old) is not None:
            parts.append(f"{what} MRR {numbers[new]:.3f} vs champion {numbers[old]:.3f}")
    if not parts:
        return "first version" if "new_earlier_mrr" not in numbers else "nothing to compare"
    tolerance = numbers.get("tolerance")
    if numbers.get("new_earlier_mrr") is not None and tolerance is not None:
        parts[0] += f", allowed drop {tolerance:g}"
    return "; ".join(parts)


def _per_set(mrrs: dict[Any, float] | None) -> dict[int, float] | None:
    """Per-test-set MRRs with int keys (they come back from a task result or JSON with str keys)."""
    return None if mrrs is None else {int(j): float(m) for j, m in mrrs.items()}


@task(name="rollback", task_run_name="rollback-to-version-{version}", retry_condition_fn=retry_unless_final)
def rollback_version(*, home: str | None, registry: dict[str, Any], version: str) -> dict[str, Any]:
    """Move ``champion`` back to ``version``: its bundle (rebuilt from its lineage's run directory when missing)
    is served first, then the alias moves."""
    reg = open_registry(home=home, registry=registry)
    evergraph_home = EvergraphHome.resolve(home)
    info = reg.get_version(version)  # a clear error for an unknown version
    bundle = _serve(
        home=evergraph_home,
        run_dir=str(evergraph_home.run_dir(info.lineage)),
        snapshot=info.snapshot,
        version=info.version,
        lineage=info.lineage,
    )
    previous = reg.champion()
    reg.rollback(info.version)
    emit_champion_event(
        ROLLED_BACK,
        model_name=reg.model_name,
        version=info.version,
        snapshot=info.snapshot,
        lineage=info.lineage,
        previous=None if previous is None else previous.version,
    )
    get_run_logger().info("champion is now version %s (snapshot %d of %s)", info.version, info.snapshot, info.lineage)
    return {"version": info.version, "snapshot": info.snapshot, "bundle": bundle}
