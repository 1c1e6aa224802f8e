"""The pipeline's plausibility check (policy flag): a report per snapshot in the home, Prefect and MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evergraph.flows.lifelong import lifelong_pipeline
from evergraph.kg.errors import PlausibilityError
from evergraph.kg.knowledge.plausibility import plausibility_path, report_path, snapshot_facts
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
    assert plausibility_path(home, report["champion"]).is_file()  # the champion's filter is kept in the home
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


def test_hold_is_refused_with_advice(example_data: Path, tmp_path: Path, prefect_harness: None) -> None:
    source = small_source(example_data, tmp_path / "source", snapshots=2)
    config = quick_config(tmp_path / "home").model_copy(update={"quarantine": "hold"})
    with pytest.raises(PlausibilityError, match="use flag"):
        lifelong_pipeline(source=str(source), strategy="lkge", model="transe", config=config)
