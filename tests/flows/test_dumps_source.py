"""The lifelong pipeline (the flow the scheduled ``evergraph-lifelong`` deployment runs) on a folder of full exports:
dropping a new export in is all a user does; the next run learns exactly that difference as one new version."""

from __future__ import annotations

from pathlib import Path

from evergraph.flows.lifelong import lifelong_pipeline
from evergraph.kg.engine.ingest import SPLITS, read_names, read_split
from evergraph.kg.store.bundle import load_champion
from tests.flows.test_lifelong import open_registry, quick_config

BASE = "http://example.org/"
LABEL = "http://www.w3.org/2000/01/rdf-schema#label"


def export(example_data: Path, upto: int, *, drop: int = 0) -> str:
    """N-Triples of every fact of snapshots ``0..upto`` of the example KG (less the first ``drop`` of them), with
    the readable names as rdfs:label."""
    facts = [
        f for k in range(upto + 1) for name in SPLITS for f in read_split(example_data / str(k) / f"{name}.txt")[0]
    ]
    names = read_names(example_data / "entity_names.tsv")
    lines = [f"<{BASE}{h}> <{BASE}{r}> <{BASE}{t}> .\n" for h, r, t in facts[drop:]]
    used = {e for h, _, t in facts for e in (h, t)}
    lines += [f'<{BASE}{e}> <{LABEL}> "{names[e]}" .\n' for e in sorted(used) if e in names]
    return "".join(lines)


def test_a_new_export_becomes_one_new_version(example_data: Path, tmp_path: Path) -> None:
    source = tmp_path / "exports"
    source.mkdir()
    (source / "2026-01-01.nt").write_text(export(example_data, 0))
    (source / "2026-02-01.nt").write_text(export(example_data, 1))
    config = quick_config(tmp_path / "home")
    first = lifelong_pipeline(source=str(source), strategy="lkge", model="transe", config=config)
    assert [r["snapshot"] for r in first["created"]] == [0, 1]

    # the next export retracts 20 facts of the first one and adds snapshot 2's facts
    (source / "2026-03-01.nt").write_text(export(example_data, 2, drop=20))
    second = lifelong_pipeline(source=str(source), strategy="lkge", model="transe", config=config)
    assert [r["snapshot"] for r in second["created"]] == [2] and second["unchanged"] == [0, 1]
    version = open_registry(tmp_path / "home").find_version(lineage=second["lineage"], snapshot=2)
    assert version is not None

    champion = load_champion(tmp_path / "home")
    if champion.snapshot == 2:  # the gate promoted it: the served bundle holds none of the retracted facts
        assert champion.retracted is not None and len(champion.retracted) <= 20
        assert any(name for name in champion.entity_names.values())  # names came from rdfs:label

    again = lifelong_pipeline(source=str(source), strategy="lkge", model="transe", config=config)
    assert again["created"] == [] and again["unchanged"] == [0, 1, 2]
