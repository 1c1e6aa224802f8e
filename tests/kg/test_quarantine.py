"""The quarantine store and the curated source of ``--quarantine hold`` (no model needed), and
``evergraph quarantine list|release|reject``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evergraph.kg.engine.ingest import GrowingKG, read_snapshot_dir
from evergraph.kg.errors import HistoryChangedError, QuarantineError
from evergraph.kg.service.cli import main
from evergraph.kg.store.quarantine import REJECTED_FILE, CuratedSource, QuarantineStore, Selection, rejected_facts
from tests.flows.test_lifelong import small_source


def _lines(path: Path) -> list[tuple[str, ...]]:
    return [tuple(line.split("\t")) for line in path.read_text(encoding="utf-8").splitlines()]


def _suspect(triple: tuple[str, ...], probability: float = 0.1) -> dict:
    head, relation, tail = triple
    return {"head": head, "relation": relation, "tail": tail, "probability": probability, "reason": "test"}


@pytest.fixture
def source(example_data: Path, tmp_path: Path) -> Path:
    return small_source(example_data, tmp_path / "source", snapshots=3)


def _curate(curated: CuratedSource, source: Path, snapshot: int, hold: list[dict], store: QuarantineStore) -> dict:
    items = [source / str(i) for i in range(snapshot + 1)]
    return curated.curate(items=items, snapshot=snapshot, hold=hold, champion="1", store=store)


def test_hold_release_reject_through_the_curated_source(source: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    store, curated = QuarantineStore(home), CuratedSource(home, "lineage-a")
    train1 = _lines(source / "1" / "train.txt")
    valid1 = _lines(source / "1" / "valid.txt")
    suspects = [train1[0], train1[1], valid1[0]]
    # snapshot 0 is copied when snapshot 1 is the first curated one: byte for byte, same content hash
    done = _curate(curated, source, 1, [_suspect(t) for t in suspects], store)
    assert done["held"] == 3 and not done["resumed"]
    assert read_snapshot_dir(curated.source / "0").content_hash == read_snapshot_dir(source / "0").content_hash
    assert set(_lines(curated.source / "1" / "train.txt")) == set(train1) - set(suspects[:2])
    assert valid1[0] not in _lines(curated.source / "1" / "valid.txt")
    held = store.facts()
    assert [(f.head, f.relation, f.tail) for f in held] == suspects
    assert [f.split for f in held] == ["train", "train", "valid"] and {f.status for f in held} == {"held"}
    assert [f.id for f in held] == [1, 2, 3] and held[0].champion == "1" and held[0].probability == 0.1
    kg = GrowingKG.load(curated.source)
    known = {
        (kg.entities.label(h), kg.relations.label(r), kg.entities.label(t)) for h, r, t in kg.known_facts(1).tolist()
    }
    assert not known & set(suspects)  # out of training and out of the known facts
    # resuming the same snapshot changes nothing and holds nothing twice
    assert _curate(curated, source, 1, [_suspect(t) for t in suspects], store)["resumed"]
    assert len(store.facts()) == 3
    # the plan sees the curated hashes; a changed source snapshot is refused
    raw = [{"snapshot": i, "content_hash": read_snapshot_dir(source / str(i)).content_hash} for i in range(3)]
    planned = curated.planned(raw, source=str(source))
    assert planned[1]["content_hash"] == read_snapshot_dir(curated.source / "1").content_hash != raw[1]["content_hash"]
    assert planned[2] == raw[2]
    with pytest.raises(HistoryChangedError, match="changed since it was checked"):
        curated.planned([{**raw[1], "content_hash": "0" * 64}], source=str(source))

    store.decide(Selection(ids=[1]), "released")
    store.decide(Selection(fact=suspects[1]), "rejected")
    done = _curate(curated, source, 2, [], store)
    assert done == {**done, "held": 0, "released": 1, "rejected": 1}
    assert suspects[0] in _lines(curated.source / "2" / "train.txt")  # learned with the next snapshot
    assert _lines(curated.source / "2" / REJECTED_FILE) == [suspects[1]]
    by_id = {f.id: f for f in store.facts()}
    assert (by_id[1].status, by_id[1].learned_in) == ("released", 2)
    assert (by_id[2].status, by_id[2].retracted_in) == ("rejected", 2)
    assert by_id[3].status == "held"
    kg = GrowingKG.load(curated.source)
    assert kg.snapshots[2].report.to_dict()  # the curated source is a valid source
    rows = rejected_facts(curated.source, upto=2, entities=kg.entities, relations=kg.relations)
    h, r, t = suspects[1]
    assert rows.tolist() == [[kg.entities.id(h), kg.relations.id(r), kg.entities.id(t)]]
    assert rejected_facts(curated.source, upto=1, entities=kg.entities, relations=kg.relations).shape == (0, 3)


def test_run_directory_follows_the_curated_source(source: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"data": str(source), "checksum": "x"}), encoding="utf-8")
    curated = CuratedSource(tmp_path / "home", "lineage-a")
    curated.point_run(run)
    assert json.loads((run / "config.json").read_text())["data"] == str(curated.source)


def test_holding_every_training_fact_is_refused(source: Path, tmp_path: Path) -> None:
    store, curated = QuarantineStore(tmp_path / "home"), CuratedSource(tmp_path / "home", "lineage-a")
    everything = [_suspect(t) for t in _lines(source / "1" / "train.txt")]
    with pytest.raises(QuarantineError, match="every training fact of snapshot 1 is a suspect"):
        _curate(curated, source, 1, everything, store)
    assert store.facts() == [] and not curated.exists()


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (Selection(), "name the facts to decide"),
        (Selection(ids=[1], all=True), "only one of these"),
        (Selection(ids=[99]), "no held fact #99"),
        (Selection(fact=("nobody", "born_in", "nowhere")), "is not held"),
    ],
)
def test_bad_selections_are_one_clean_error(source: Path, tmp_path: Path, selection: Selection, message: str) -> None:
    store = QuarantineStore(tmp_path / "home")
    _curate(CuratedSource(tmp_path / "home", "a"), source, 1, [_suspect(_lines(source / "1" / "train.txt")[0])], store)
    with pytest.raises(QuarantineError, match=message):
        store.decide(selection, "released")
    assert store.facts()[0].status == "held"  # nothing changed


def test_deciding_twice_and_an_empty_quarantine(source: Path, tmp_path: Path) -> None:
    store = QuarantineStore(tmp_path / "home")
    with pytest.raises(QuarantineError, match="empty .nothing was ever held"):
        store.decide(Selection(all=True), "released")
    _curate(CuratedSource(tmp_path / "home", "a"), source, 1, [_suspect(_lines(source / "1" / "train.txt")[0])], store)
    store.decide(Selection(ids=[1]), "rejected")
    with pytest.raises(QuarantineError, match="empty .all 1 held fact"):
        store.decide(Selection(ids=[1]), "released")


def test_a_damaged_quarantine_file_names_itself(tmp_path: Path) -> None:
    store = QuarantineStore(tmp_path / "home")
    store.root.mkdir(parents=True)
    store.path.write_text("{not json", encoding="utf-8")
    with pytest.raises(QuarantineError, match="facts.json is not valid JSON"):
        store.facts()
    store.path.write_text(json.dumps({"format": 1, "facts": [{"id": "x"}]}), encoding="utf-8")
    with pytest.raises(QuarantineError, match=r"facts\[0\]\.id"):
        store.facts()


def test_cli_list_release_reject(source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    train1 = _lines(source / "1" / "train.txt")
    _curate(CuratedSource(home, "a"), source, 1, [_suspect(t) for t in train1[:3]], QuarantineStore(home))
    assert main(["quarantine", "list", "--home", str(home), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    expected = [(number, triple[0], "held") for number, triple in enumerate(train1[:3], start=1)]
    assert [(f["id"], f["head"], f["status"]) for f in listed] == expected
    assert {"probability", "reason", "snapshot", "champion"} <= set(listed[0])
    assert main(["quarantine", "release", "1", "--home", str(home), "--json"]) == 0
    assert [f["status"] for f in json.loads(capsys.readouterr().out)] == ["released"]
    assert main(["quarantine", "reject", "--fact", *train1[1], "--home", str(home)]) == 0
    assert "rejected 1 fact(s)" in capsys.readouterr().out
    assert main(["quarantine", "list", "--home", str(home), "--json"]) == 0
    assert [f["id"] for f in json.loads(capsys.readouterr().out)] == [3]
    assert main(["quarantine", "list", "--home", str(home), "--all", "--json"]) == 0
    assert [f["status"] for f in json.loads(capsys.readouterr().out)] == ["released", "rejected", "held"]
    # bad selections: one clean error line, exit status 2, nothing changed
    for argv in (["release", "7"], ["reject"], ["release", "1"], ["release", "3", "--all"]):
        assert main(["quarantine", *argv, "--home", str(home)]) == 2
        out = capsys.readouterr().out
        assert out.startswith("error:") and "Traceback" not in out
    assert main(["quarantine", "reject", "--all", "--home", str(home)]) == 0
    capsys.readouterr()
    assert main(["quarantine", "list", "--home", str(home)]) == 0
    assert "nothing is held" in capsys.readouterr().out
