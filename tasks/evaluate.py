"""Evaluate tasks: the new version against the champion on equal terms (the newest test set and the earlier ones),
for the promotion gate, one task per test set so that a Dask or Ray task runner spreads them over its workers.

:func:`submit_comparison` plans the comparison in the flow (is there a champion, can the two versions be compared,
which test sets), submits one ``compare-test-set`` task per test set and returns a :class:`PendingComparison`
whose :meth:`~PendingComparison.result` joins them into the dict the gate reads. The models and the snapshots are
loaded once per process (a worker keeps them for the snapshot's other test sets), not once per task.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from prefect import get_run_logger, task
from prefect.futures import PrefectFuture

from evergraph.kg.engine.comparison import (
    EarlierTestSetsComparison,
    compare_on_earlier_test_sets,
    compare_on_new_test_set,
    triples_per_test_set,
)
from evergraph.kg.engine.config import EvaluationConfig
from evergraph.kg.engine.evaluation import CandidateSample, ranking_label
from evergraph.kg.engine.ingest import load_shared
from evergraph.kg.engine.model import KGEModel
from evergraph.kg.engine.run_files import RunPaths, load_model_checkpoint
from evergraph.kg.errors import BundleError, EvergraphError
from evergraph.kg.store.bundle import BundleModel, load_champion_model, read_pointer
from evergraph.kg.store.home import EvergraphHome
from evergraph.tasks.common import IO_RETRIES, IO_RETRY_DELAYS, retry_unless_final

logger = logging.getLogger(__name__)

__all__ = ["PendingComparison", "compare_test_set", "compare_with_champion", "plan_comparison", "submit_comparison"]

T = TypeVar("T")

_MODELS: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_MODELS_LOCK = threading.Lock()
_MODELS_MAX = 2
"""Models kept per process: the champion and the new version of the snapshot being compared."""


def _cached(key: tuple[Any, ...], load: Callable[[], T]) -> T:
    """``load()`` once per process for ``key`` (the last :data:`_MODELS_MAX` kept); one load at a time."""
    with _MODELS_LOCK:
        if key in _MODELS:
            _MODELS.move_to_end(key)
            return _MODELS[key]  # type: ignore[no-any-return]
        value = load()
        _MODELS[key] = value
        while len(_MODELS) > _MODELS_MAX:
            _MODELS.popitem(last=False)
        return value


def release_models() -> None:
    """Forget the models this process keeps for comparisons."""
    with _MODELS_LOCK:
        _MODELS.clear()


def _stat(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _champion(home: EvergraphHome) -> BundleModel:
    """The champion's model (weights checked), once per process while the pointer and its weights stay put."""
    pointer = read_pointer(home.champion_pointer)
    if pointer is None:
        raise BundleError(f"no champion ({home.champion_pointer} does not exist)")
    weights = home.champion_pointer.parent / str(pointer["bundle"]) / "weights.pt"
    try:
        key = ("champion", str(home.champion_pointer), str(pointer["version"]), str(weights), _stat(weights))
    except OSError:  # no weights: loading says what is wrong with the bundle
        return load_champion_model(home)
    return _cached(key, lambda: load_champion_model(home))


def _new_model(run_dir: str, snapshot: int) -> KGEModel:
    """The new version's model (its snapshot checkpoint), once per process while the file stays put."""
    path = RunPaths(run_dir).snapshot_checkpoint(snapshot)
    return _cached(("new", str(path), _stat(path)), lambda: load_model_checkpoint(path)[0])


def _sample(run_dir: str, num_entities: int) -> CandidateSample | None:
    """Above the run's size threshold, both versions are ranked against the same fixed candidate samples."""
    stored = json.loads(RunPaths(run_dir).config.read_text()).get("evaluation", {})
    return EvaluationConfig.model_validate(stored).sample_for(num_entities)


@task(
    name="plan-comparison",
    task_run_name="plan-snapshot-{snapshot}-comparison",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_unless_final,
)
def plan_comparison(
    *, home: str | None, source: str, run_dir: str, snapshot: int, lineage: str | None = None
) -> dict[str, Any]:
    """What comparing ``snapshot``'s new version with the champion takes: ``{"outcome": ...}`` when there is
    nothing to rank (``None``: no champion, or a different kind of model; ``{"cannot_compare": reason}``: the
    champion knows entities or relations the new version lacks; ``{"same_version": v}``: ``lineage`` (default
    None: not checked) and ``snapshot`` are what the pointer already serves, an interrupted promotion), else
    ``{"champion_version", "test_sets", "ranking", "max_triples"}``: the new test set first, then every earlier
    one the champion saw, and the triples to rank per earlier set (a budget over all of them)."""
    run_logger = get_run_logger()
    evergraph_home = EvergraphHome.resolve(home)
    if not evergraph_home.champion_pointer.exists():
        run_logger.info("no champion yet: nothing to compare snapshot %d with", snapshot)
        return {"outcome": None}
    try:
        champion = _champion(evergraph_home)  # the model only: no index, facts or calibration
    except BundleError as error:
        run_logger.warning("the champion's bundle cannot be loaded (%s); the new-test-set rule is skipped", error)
        return {"outcome": None}
    served = (champion.manifest.get("extra") or {}).get("lineage"), champion.snapshot
    if lineage is not None and served == (lineage, snapshot):
        run_logger.warning(
            "the serving pointer already names this snapshot (version %s): an earlier run's promotion was "
            "interrupted; not comparing the version with itself",
            champion.version,
        )
        return {"outcome": {"same_version": champion.version, "champion_version": champion.version}}
    new = _new_model(run_dir, snapshot)
    if champion.model.interaction_name != new.interaction_name or champion.model.entity.shape[1] != new.entity.shape[1]:
        run_logger.info("the champion is a different kind of model; the new-test-set rule is skipped")
        return {"outcome": None}
    if champion.model.num_entities > new.num_entities or champion.model.num_relations > new.num_relations:
        reason = (
            f"the champion (version {champion.version}) knows {champion.model.num_entities} entities and "
            f"{champion.model.num_relations} relations, the new version (snapshot {snapshot}) only "
            f"{new.num_entities} and {new.num_relations}: it cannot answer for everything the champion serves"
        )
        run_logger.warning("the gate cannot compare: %s", reason)
        return {"outcome": {"cannot_compare": reason, "champion_version": champion.version}}
    earlier = list(range(min(champion.snapshot, snapshot - 1) + 1))
    ranking = ranking_label(_sample(run_dir, champion.model.num_entities))
    return {
        "champion_version": champion.version,
        "test_sets": [snapshot, *earlier],
        "ranking": ranking,
        "max_triples": triples_per_test_set(len(earlier)),  # the gate's cost stays flat as history grows
    }


@task(
    name="compare-test-set",
    task_run_name="compare-snapshot-{snapshot}-test-set-{test_set}",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_unless_final,
)
def compare_test_set(
    *,
    home: str | None,
    source: str,
    run_dir: str,
    snapshot: int,
    test_set: int,
    champion_version: str,
    max_triples: int | None = 5000,
) -> dict[str, Any]:
    """Both versions ranked on test set ``test_set`` against the champion's entities: ``{"new": ...}`` (the
    shared part of the new test set, ``test_set == snapshot``) or ``{"earlier": ...}`` (an earlier test set),
    as :func:`evergraph.kg.engine.comparison.compare_on_new_test_set` / ``compare_on_earlier_test_sets`` give
    them. ``champion_version`` is the champion the comparison was planned with; a pointer that moved since is
    an error. ``max_triples`` (default 5,000; the plan gives
    :func:`~evergraph.kg.engine.comparison.triples_per_test_set`) caps the triples of an earlier test set."""
    champion = _champion(EvergraphHome.resolve(home))
    if champion.version != champion_version:
        raise EvergraphError(
            f"the champion moved from version {champion_version} to {champion.version} while snapshot {snapshot} "
            "was compared with it; run the pipeline again"
        )
    new = _new_model(run_dir, snapshot)
    kg = load_shared(source, upto=snapshot)  # once per process: the loads are shared
    sample = _sample(run_dir, champion.model.num_entities)
    if test_set == snapshot:
        result = compare_on_new_test_set(new=new, champion=champion.model, kg=kg, snapshot=snapshot, sample=sample)
        return {"new": result.to_dict()}
    earlier = compare_on_earlier_test_sets(
        new=new,
        champion=champion.model,
        kg=kg,
        snapshot=snapshot,
        test_sets=[test_set],
        sample=sample,
        max_triples=max_triples,
    )
    return {"earlier": earlier.to_dict()}


def _joined(parts: Sequence[dict[str, Any]]) -> EarlierTestSetsComparison:
    """The earlier test sets' parts as one comparison, in test-set order (sets with nothing to rank left out)."""
    earlier = sorted((p["earlier"] for p in parts if "earlier" in p), key=lambda e: e["test_sets"] or [-1])
    return EarlierTestSetsComparison(
        test_sets=[j for part in earlier for j in part["test_sets"]],
        queries=sum(int(part["queries"]) for part in earlier),
        new_mrr={j: mrr for part in earlier for j, mrr in part["new_mrr"].items()},
        champion_mrr={j: mrr for part in earlier for j, mrr in part["champion_mrr"].items()},
    )


@dataclass
class PendingComparison:
    """A comparison under way: either its ``outcome`` already, or the per-test-set tasks to join."""

    outcome: dict[str, Any] | None = None
    champion_version: str | None = None
    ranking: str | None = None
    futures: list[PrefectFuture[dict[str, Any]]] = field(default_factory=list)

    def result(self) -> dict[str, Any] | None:
        """The comparison the gate reads: the new test set's figures (``snapshot``, ``shared_queries``,
        ``total_queries``, ``new_mrr``, ``champion_mrr``), ``earlier`` (per earlier test set), the
        ``champion_version`` and the ``ranking``; or the planned outcome (``None``, ``cannot_compare``,
        ``same_version``). Waits for the tasks; a failed one raises its error."""
        if not self.futures:
            return self.outcome
        parts = [future.result() for future in self.futures]
        release_models()  # this process is done with them; the next snapshot compares other models
        earlier = _joined(parts)
        logger.info("earlier test sets: %s", earlier.to_dict())
        return {
            **next(p["new"] for p in parts if "new" in p),
            "earlier": earlier.to_dict(),
            "champion_version": self.champion_version,
            "ranking": self.ranking,
        }


def submit_comparison(
    *, home: str | None, source: str, run_dir: str, snapshot: int, lineage: str | None = None
) -> PendingComparison:
    """Plan the comparison of ``snapshot``'s new version with the champion (:func:`plan_comparison`, in the
    calling flow) and submit one :func:`compare_test_set` task per test set to the flow's task runner; call
    :meth:`PendingComparison.result` for the joined comparison."""
    plan = plan_comparison(home=home, source=source, run_dir=run_dir, snapshot=snapshot, lineage=lineage)
    if "outcome" in plan:
        return PendingComparison(outcome=plan["outcome"])
    common = {"home": home, "source": source, "run_dir": run_dir, "snapshot": snapshot}
    futures = [
        compare_test_set.submit(
            **common, test_set=j, champion_version=plan["champion_version"], max_triples=plan["max_triples"]
        )
        for j in plan["test_sets"]
    ]
    return PendingComparison(champion_version=plan["champion_version"], ranking=plan["ranking"], futures=futures)


def compare_with_champion(
    *, home: str | None, source: str, run_dir: str, snapshot: int, lineage: str | None = None
) -> dict[str, Any] | None:
    """:func:`submit_comparison`, then its result: MRR of the new version and of the champion (loaded from its
    serving bundle, not from MLflow) on the part of ``snapshot``'s test set the champion can score, and (under
    ``earlier``) per earlier test set, both ranked against the champion's entities; ``None`` when there is no
    champion to compare with, ``{"cannot_compare": reason}`` when the champion knows entities or relations the
    new version lacks (the gate then does not promote), ``{"same_version": v}`` when ``lineage`` and ``snapshot``
    are what the pointer already serves."""
    return submit_comparison(home=home, source=source, run_dir=run_dir, snapshot=snapshot, lineage=lineage).result()
