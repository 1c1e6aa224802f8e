"""The pipeline's plausibility check (policy flag): a report per snapshot in the home, Prefect and MLflow."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from evergraph.flows.lifelong import lifelong_pipeline
from evergraph.kg.knowledge.plausibility import PLAUSIBILITY_FILE, plausibility_path, report_path, snapshot_facts
from evergraph.tasks.artifacts import artifact_key
from tests.flows.test_lifelong import open_registry, quick_config, small_source


def test_flag_reports_every_new_fact_and_learns_them_all(
    example_data: Path, tmp_path: Path, prefect_harness: None
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    source = small_source(example_data, tmp_path / "source", snapshots=2)
    home = tmp_path / "home"
    summary = lifelong_pipeline(source=str(source), strategy="lkge", model="transe", config=quick_config(home))
    lineage = summary["lineage"]
    assert not report_path(home, lineage, 0).exists()  # no champion to check the first snapshot against
    report = json.loads(report_path(home, lineage, 1).read_text())
    facts = snapshot_facts(source, 1)
    assert report["checked"] == len(facts) and report["policy"] == "flag"
    assert [(r["head"], r["relation"], r["tail"]) for r in report["facts"]] == facts  # every new fact, in order
    assert report["suspects"] == sum(r["suspect"] for r in report["facts"])
    carried = Path(home) / "bundles" / f"v{report['champion']}" / PLAUSIBILITY_FILE
    assert carried.is_file()  # fitted when the champion's bundle was written ...
    assert not plausibility_path(home, report["champion"]).exists()  # ... so the check did not fit it again
    # flag learns everything: snapshot 1's champion knows all its training facts
    registry = open_registry(home)
    version = registry.find_version(lineage=lineage, snapshot=1)
    assert version is not None
    artifacts = [a.path for a in registry.client.list_artifacts(version.run_id, "plausibility")]
    assert artifacts == ["plausibility/snapshot-1.json"]
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_=lineage)))
    tables = [a for a in found if a.key == artifact_key(lineage, "plausibility") and a.type == "table"]
    assert tables and "suspect" in (tables[0].description or "")


def _inject_garbage(source: Path, snapshot: int, count: int) -> list[tuple[str, str, str]]:
    """Append ``count`` facts no graph of this kind holds (a person born in a person) about people snapshot 0
    already knows (so the champion can score them) to ``snapshot``'s train."""
    lines = (source / "0" / "train.txt").read_text(encoding="utf-8").splitlines()
    people = sorted({h for h, r, _ in (line.split("\t") for line in lines) if r == "born_in"})
    garbage = [(people[i], "born_in", people[-1 - i]) for i in range(count)]
    with (source / str(snapshot) / "train.txt").open("a", encoding="utf-8") as handle:
        handle.writelines(f"{h}\t{r}\t{t}\n" for h, r, t in garbage)
    return garbage


def _bundle_facts(home: Path, lineage: str, snapshot: int, dest: Path) -> tuple[set, set]:
    """The known and the retracted facts (labels) of a bundle of ``snapshot`` written from the lineage's run."""
    from evergraph.kg.store.bundle import Bundle
    from evergraph.kg.store.bundle_writer import write_bundle

    write_bundle(run_dir=Path(home) / "runs" / lineage, snapshot=snapshot, dest=dest, version=f"t{snapshot}")
    bundle = Bundle.load(dest)
    e, r = bundle.entities.label, bundle.relations.label
    known = {(e(h), r(x), e(t)) for h, x, t in bundle.facts.facts[:, :3].tolist()}
    rows = [] if bundle.retracted is None else bundle.retracted.facts.tolist()
    retracted = {(e(h), r(x), e(t)) for h, x, t, _ in rows}
    return known, retracted


@pytest.mark.slow  # three pipeline snapshots
def test_hold_keeps_suspects_out_until_released_or_rejected(
    example_data: Path, tmp_path: Path, prefect_harness: None
) -> None:
    from evergraph.kg.engine.ingest import GrowingKG
    from evergraph.kg.store.quarantine import CuratedSource, QuarantineStore, Selection

    source = small_source(example_data, tmp_path / "source", snapshots=2)
    garbage = _inject_garbage(source, 1, 6)
    home = tmp_path / "home"
    config = quick_config(home).model_copy(update={"quarantine": "hold"})
    summary = lifelong_pipeline(source=str(source), strategy="lkge", model="transe", config=config)
    lineage = summary["lineage"]
    report = json.loads(report_path(home, lineage, 1).read_text())
    store = QuarantineStore(home)
    held = store.facts()
    suspects = [(r["head"], r["relation"], r["tail"]) for r in report["facts"] if r["suspect"]]
    assert report["policy"] == "hold" and report["held"] == len(held) == len(suspects) >= 2  # nothing silently dropped
    assert [f.triple for f in held] == suspects and {f.snapshot for f in held} == {1}
    assert set(garbage) & set(suspects), "the injected facts should be among the suspects"
    # out of the training data and out of the bundle's known facts
    curated = CuratedSource(home, lineage)
    run_config = json.loads((home / "runs" / lineage / "config.json").read_text())
    assert run_config["data"] == str(curated.source)
    kg = GrowingKG.load(curated.source)
    e, r = kg.entities.get, kg.relations.get
    trained = {tuple(x) for x in kg.train_facts(1).tolist()}
    assert all((e(h), r(x), e(t)) not in trained for h, x, t in suspects)
    known, _ = _bundle_facts(home, lineage, 1, tmp_path / "b1")
    assert not known & set(suspects)

    # a person releases one and rejects another; the next run learns the released one, retracts the rejected one
    nameable = [f for f in held if e(f.head) is not None and e(f.tail) is not None]  # so a bundle can retract it
    rejected = nameable[0]
    released = next(f for f in held if f.id != rejected.id)
    store.decide(Selection(ids=[released.id]), "released")
    store.decide(Selection(ids=[rejected.id]), "rejected")
    shutil.copytree(example_data / "2", source / "2")
    summary = lifelong_pipeline(source=str(source), strategy="lkge", model="transe", config=config)
    assert [row["snapshot"] for row in summary["created"]] == [2]
    known, retracted = _bundle_facts(home, lineage, 2, tmp_path / "b2")
    assert released.triple in known and rejected.triple not in known
    assert rejected.triple in retracted  # never cited nor inferred
    by_id = {f.id: f for f in store.facts()}
    assert by_id[released.id].learned_in == 2 and by_id[rejected.id].retracted_in == 2
    assert all(by_id[f.id].status == "held" for f in held if f.id not in (released.id, rejected.id))  # waiting


@pytest.mark.slow  # three pipeline snapshots
def test_a_lineage_can_switch_from_flag_to_hold(example_data: Path, tmp_path: Path, prefect_harness: None) -> None:
    from evergraph.kg.store.quarantine import CuratedSource, QuarantineStore

    source = small_source(example_data, tmp_path / "source", snapshots=2)
    home = tmp_path / "home"
    summary = lifelong_pipeline(source=str(source), strategy="lkge", model="transe", config=quick_config(home))
    lineage = summary["lineage"]
    shutil.copytree(example_data / "2", source / "2")
    garbage = _inject_garbage(source, 2, 6)
    config = quick_config(home).model_copy(update={"quarantine": "hold"})
    summary = lifelong_pipeline(source=str(source), strategy="lkge", model="transe", config=config)
    assert [row["snapshot"] for row in summary["created"]] == [2]  # snapshots 0 and 1 are not learned again
    held = QuarantineStore(home).facts()
    assert set(garbage) & {f.triple for f in held} and {f.snapshot for f in held} == {2}
    known, _ = _bundle_facts(home, lineage, 2, tmp_path / "b2")
    assert not known & {f.triple for f in held}
    # the snapshots learned before hold were copied byte for byte; the next run plans nothing new
    record = CuratedSource(home, lineage).record()
    assert record["0"]["hash"] == record["0"]["raw_hash"] and record["2"]["hash"] != record["2"]["raw_hash"]
    again = lifelong_pipeline(source=str(source), strategy="lkge", model="transe", config=config)
    assert again["created"] == [] and again["unchanged"] == [0, 1, 2]
