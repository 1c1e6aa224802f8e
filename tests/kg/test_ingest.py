"""Tests of evergraph.kg.engine.ingest: strict snapshot validation, counted policies and the growing KG with stable
ids."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from evergraph.kg.engine.ingest import (
    GrowingKG,
    list_snapshot_dirs,
    read_names,
    read_snapshot_dir,
    read_split,
)
from evergraph.kg.engine.vocab import Vocabulary
from evergraph.kg.errors import Problem, SnapshotError

ENTITY_DIR = Path(__file__).parents[2] / ".." / "shared" / "data" / "lkge" / "ENTITY"

Rows = Sequence[tuple[str, str, str]]


def _lines(rows: Rows) -> str:
    return "".join(f"{h}\t{r}\t{t}\n" for h, r, t in rows)


def write_snapshot(root: Path, index: int, *, train: Rows = (), valid: Rows = (), test: Rows = ()) -> Path:
    """Write ``root/<index>/{train,valid,test}.txt`` from rows of labels; return the snapshot directory."""
    snap = root / str(index)
    snap.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train), ("valid", valid), ("test", test)):
        (snap / f"{name}.txt").write_text(_lines(rows), encoding="utf-8")
    return snap


def write_dataset(root: Path) -> Path:
    """Three small snapshots: snapshot 1 brings entities d, e and relation s; snapshot 2 entity f."""
    write_snapshot(
        root,
        0,
        train=[("a", "r", "b"), ("b", "r", "c"), ("c", "q", "a")],
        valid=[("a", "q", "b")],
        test=[("b", "q", "c")],
    )
    write_snapshot(
        root,
        1,
        train=[("d", "s", "a"), ("a", "r", "e"), ("e", "r", "d")],
        valid=[("d", "r", "a")],
        test=[("e", "s", "b")],
    )
    write_snapshot(
        root,
        2,
        train=[("f", "r", "a"), ("f", "q", "d")],
        valid=[("f", "s", "e")],
        test=[("a", "s", "f")],
    )
    return root


def problems_of(error: pytest.ExceptionInfo[SnapshotError]) -> list[tuple[str, int, str]]:
    return [(Path(p.path).name, p.line, p.reason) for p in error.value.problems]


# ------------------------------------------------------------------------------------------- read_split


def test_read_split_keeps_file_order_and_drops_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    path.write_text("a\tr\tb\nc\tr\td\na\tr\tb\na\tr\tb\nb\tr\ta\n", encoding="utf-8")
    triples, duplicates = read_split(path)
    assert triples == [("a", "r", "b"), ("c", "r", "d"), ("b", "r", "a")]
    assert duplicates == 2


def test_read_split_accepts_a_missing_final_newline_and_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    path.write_text("a\tr\tb\nc\tr\td", encoding="utf-8")
    assert read_split(path) == ([("a", "r", "b"), ("c", "r", "d")], 0)
    path.write_text("", encoding="utf-8")
    assert read_split(path) == ([], 0)


def test_read_split_keeps_inner_spaces_and_unicode(tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    path.write_text("Zoë Saldaña\tacted in\tAvatar (2009)\n", encoding="utf-8")
    assert read_split(path) == ([("Zoë Saldaña", "acted in", "Avatar (2009)")], 0)


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        (b"a\tr\tb\na\tr\n", 2, "expected 3 tab-separated fields, found 2"),
        (b"a\tr\tb\tc\n", 1, "expected 3 tab-separated fields, found 4"),
        (b"a r b\n", 1, "expected 3 tab-separated fields, found 1"),
        (b"\tr\tb\n", 1, "empty head"),
        (b"a\t\tb\n", 1, "empty relation"),
        (b"a\tr\t\n", 1, "empty tail"),
        (b"a\tr \tb\n", 1, "leading/trailing whitespace around the relation field"),
        (b" a\tr\tb\n", 1, "leading/trailing whitespace around the head field"),
        (b"a\tr\tb\r\n", 1, "leading/trailing whitespace around the tail field"),
        (b"a\tr\tb\n\nc\tr\td\n", 2, "empty line"),
        (b"a\tr\tb\n\n", 2, "empty line"),
        (b"a\tr\tb\nc\tr\t\xff\xfed\n", 2, "invalid UTF-8"),
    ],
)
def test_read_split_rejects_each_rule_with_file_line_and_reason(
    tmp_path: Path, content: bytes, line: int, reason: str
) -> None:
    path = tmp_path / "train.txt"
    path.write_bytes(content)
    with pytest.raises(SnapshotError) as info:
        read_split(path)
    message = str(info.value)
    assert f"{path}:{line}: {reason}" in message
    assert "nothing was stored" in message
    assert len(info.value.problems) == 1
    assert info.value.problems[0].line == line


def test_crlf_problem_hints_at_the_line_ending(tmp_path: Path) -> None:
    path = tmp_path / "test.txt"
    path.write_bytes(b"a\tr\tb\r\nc\tr\td\r\n")
    with pytest.raises(SnapshotError) as info:
        read_split(path)
    assert [p.line for p in info.value.problems] == [1, 2]
    assert "\\r\\n" in info.value.problems[0].reason


def test_read_split_collects_all_problems_of_a_file(tmp_path: Path) -> None:
    path = tmp_path / "valid.txt"
    path.write_bytes(b"a\tr\tb\nbad\n\tr\t\nc\tr\td\n \tx\ty \n\xff\tr\tb\n")
    with pytest.raises(SnapshotError) as info:
        read_split(path)
    assert problems_of(info) == [
        ("valid.txt", 2, "expected 3 tab-separated fields, found 1"),
        ("valid.txt", 3, "empty head"),
        ("valid.txt", 3, "empty tail"),
        ("valid.txt", 5, "leading/trailing whitespace around the head field"),
        ("valid.txt", 5, "leading/trailing whitespace around the tail field"),
        ("valid.txt", 6, "invalid UTF-8 (byte 0 of the line)"),
    ]


def test_many_problems_are_summarised(tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    path.write_text("bad\n" * 25, encoding="utf-8")
    with pytest.raises(SnapshotError) as info:
        read_split(path)
    assert len(info.value.problems) == 25
    message = str(info.value)
    assert f"{path}:20: expected 3" in message
    assert f"{path}:21:" not in message
    assert "... and 5 more problem(s)" in message


def test_missing_split_file(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError) as info:
        read_split(tmp_path / "test.txt")
    assert info.value.problems == [
        Problem(
            str(tmp_path / "test.txt"),
            0,
            "missing split file; every snapshot needs train.txt, valid.txt and test.txt",
        )
    ]
    assert f"{tmp_path / 'test.txt'}: missing split file" in str(info.value)


# ------------------------------------------------------------------------------------ read_snapshot_dir


def test_read_snapshot_dir(tmp_path: Path) -> None:
    snap = write_snapshot(tmp_path, 0, train=[("a", "r", "b"), ("a", "r", "b")], valid=[("b", "r", "a")])
    raw = read_snapshot_dir(snap)
    assert raw.train == [("a", "r", "b")]
    assert raw.valid == [("b", "r", "a")]
    assert raw.test == []
    assert raw.duplicates_dropped == {"train": 1, "valid": 0, "test": 0}
    assert len(raw.content_hash) == 64
    assert read_snapshot_dir(snap).content_hash == raw.content_hash


def test_content_hash_changes_when_a_line_moves_between_splits(tmp_path: Path) -> None:
    one = write_snapshot(tmp_path / "x", 0, train=[("a", "r", "b")], valid=[("b", "r", "a")])
    two = write_snapshot(tmp_path / "y", 0, train=[("a", "r", "b"), ("b", "r", "a")])
    assert read_snapshot_dir(one).content_hash != read_snapshot_dir(two).content_hash


def test_leakage_between_splits_names_both_files(tmp_path: Path) -> None:
    snap = write_snapshot(
        tmp_path,
        0,
        train=[("a", "r", "b"), ("b", "r", "c")],
        valid=[("x", "r", "y"), ("b", "r", "c")],
        test=[("a", "r", "b"), ("x", "r", "y")],
    )
    with pytest.raises(SnapshotError) as info:
        read_snapshot_dir(snap)
    assert problems_of(info) == [
        ("valid.txt", 2, "triple also in train.txt line 2 (leakage between splits)"),
        ("test.txt", 1, "triple also in train.txt line 1 (leakage between splits)"),
        ("test.txt", 2, "triple also in valid.txt line 1 (leakage between splits)"),
    ]
    assert f"{snap / 'valid.txt'}:2: triple also in train.txt line 2" in str(info.value)


def test_problems_of_all_three_files_are_raised_together(tmp_path: Path) -> None:
    snap = tmp_path / "0"
    snap.mkdir()
    (snap / "train.txt").write_bytes(b"a\tr\n")
    (snap / "valid.txt").write_bytes(b"a\tr\tb \n")
    with pytest.raises(SnapshotError) as info:
        read_snapshot_dir(snap)
    assert [(name, line) for name, line, _ in problems_of(info)] == [
        ("train.txt", 1),
        ("valid.txt", 1),
        ("test.txt", 0),
    ]


def test_missing_snapshot_directory(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="snapshot directory not found"):
        read_snapshot_dir(tmp_path / "7")


# ----------------------------------------------------------------------------------- list_snapshot_dirs


def test_list_snapshot_dirs_is_numeric_and_ignores_other_entries(tmp_path: Path) -> None:
    for n in range(12):
        (tmp_path / str(n)).mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "entity_names.tsv").write_text("", encoding="utf-8")
    assert [p.name for p in list_snapshot_dirs(tmp_path)] == [str(n) for n in range(12)]


@pytest.mark.parametrize(
    ("names", "reason"),
    [
        (["0", "1", "3"], "without gaps; found 0, 1, 3; missing 2"),
        (["1", "2"], "missing 0"),
        ([], "no snapshot directories found"),
        (["0", "01"], "leading zero; use 1"),
    ],
)
def test_list_snapshot_dirs_rejects_bad_layouts(tmp_path: Path, names: list[str], reason: str) -> None:
    for name in names:
        (tmp_path / name).mkdir()
    with pytest.raises(SnapshotError, match=reason) as info:
        list_snapshot_dirs(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_list_snapshot_dirs_rejects_a_numbered_file(tmp_path: Path) -> None:
    (tmp_path / "0").mkdir()
    (tmp_path / "1").write_text("", encoding="utf-8")
    with pytest.raises(SnapshotError, match="must be a directory"):
        list_snapshot_dirs(tmp_path)


def test_list_snapshot_dirs_missing_dataset(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="dataset directory not found"):
        list_snapshot_dirs(tmp_path / "nope")


# ------------------------------------------------------------------------------------------- read_names


def test_read_names(tmp_path: Path) -> None:
    path = tmp_path / "entity_names.tsv"
    path.write_text("/m/1\tBarack Obama\n/m/2\tHawaii\n/m/1\tBarack Obama\n", encoding="utf-8")
    assert read_names(path) == {"/m/1": "Barack Obama", "/m/2": "Hawaii"}


def test_read_names_validates_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "entity_names.tsv"
    path.write_bytes(b"/m/1\tObama\n/m/2\n/m/3\t\n/m/1\tOther\n")
    with pytest.raises(SnapshotError) as info:
        read_names(path)
    assert problems_of(info) == [
        ("entity_names.tsv", 2, "expected 2 tab-separated fields, found 1"),
        ("entity_names.tsv", 3, "empty name"),
        ("entity_names.tsv", 4, "id '/m/1' already named 'Obama' on line 1"),
    ]


# ------------------------------------------------------------------------------------------- GrowingKG


def test_ids_come_from_train_in_order_of_first_appearance(tmp_path: Path) -> None:
    snap = write_snapshot(
        tmp_path,
        0,
        train=[("c", "q", "a"), ("a", "r", "b"), ("d", "q", "c")],
        valid=[("a", "r", "c")],
    )
    kg = GrowingKG()
    snapshot = kg.ingest(snap)
    assert kg.entities.labels == ["c", "a", "b", "d"]
    assert kg.relations.labels == ["q", "r"]
    assert snapshot.train.tolist() == [[0, 0, 1], [1, 1, 2], [3, 0, 0]]
    assert snapshot.valid.tolist() == [[1, 1, 0]]
    assert snapshot.test.shape == (0, 3)
    assert snapshot.train.dtype == torch.long
    assert (snapshot.index, snapshot.num_entities, snapshot.num_relations) == (0, 4, 2)
    assert snapshot.content_hash == read_snapshot_dir(snap).content_hash


def test_vocabulary_is_stable_across_snapshots(tmp_path: Path) -> None:
    root = write_dataset(tmp_path)
    kg = GrowingKG()
    kg.ingest(root / "0")
    first_entities, first_relations = kg.entities.labels, kg.relations.labels
    first_ids = kg.entities.ids(first_entities)
    first_train = kg.snapshots[0].train.clone()
    kg.ingest(root / "1")
    kg.ingest(root / "2")
    assert first_entities == ["a", "b", "c"]
    assert kg.entities.labels[:3] == first_entities
    assert kg.entities.ids(first_entities) == first_ids
    assert kg.relations.labels[:2] == first_relations
    assert kg.entities.id("d") == 3 and kg.entities.id("e") == 4 and kg.entities.id("f") == 5
    assert kg.relations.id("s") == 2
    assert torch.equal(kg.snapshots[0].train, first_train)
    assert [(s.num_entities, s.num_relations) for s in kg.snapshots] == [(3, 2), (5, 3), (6, 3)]


def test_reingesting_gives_identical_ids(tmp_path: Path) -> None:
    root = write_dataset(tmp_path)
    one, two = GrowingKG.load(root), GrowingKG.load(root)
    assert one.entities.labels == two.entities.labels
    for a, b in zip(one.snapshots, two.snapshots, strict=True):
        assert torch.equal(a.facts, b.facts)
        assert a.content_hash == b.content_hash


def test_duplicates_are_dropped_and_counted(tmp_path: Path) -> None:
    snap = write_snapshot(
        tmp_path,
        0,
        train=[("a", "r", "b"), ("a", "r", "b"), ("b", "r", "a")],
        test=[("b", "r", "b"), ("b", "r", "b"), ("b", "r", "b")],
    )
    snapshot = GrowingKG().ingest(snap)
    assert snapshot.report.duplicates_dropped == {"train": 1, "valid": 0, "test": 2}
    assert snapshot.train.shape == (2, 3)
    assert snapshot.test.shape == (1, 3)


def test_known_facts_from_earlier_snapshots_are_skipped_and_counted(tmp_path: Path) -> None:
    write_snapshot(tmp_path, 0, train=[("a", "r", "b"), ("b", "r", "c")], valid=[("a", "r", "c")])
    write_snapshot(
        tmp_path,
        1,
        train=[("a", "r", "c"), ("c", "r", "d")],  # a r c was valid in snapshot 0
        valid=[("a", "r", "b"), ("d", "r", "a")],  # a r b was train in snapshot 0
        test=[("b", "r", "c")],  # b r c was train in snapshot 0
    )
    kg = GrowingKG.load(tmp_path)
    report = kg.snapshots[1].report
    assert report.known_skipped == {"train": 1, "valid": 1, "test": 1}
    labels = [[kg.entities.label(i) for i in (h, t)] for h, _, t in kg.snapshots[1].facts.tolist()]
    assert labels == [["c", "d"], ["d", "a"]]
    assert kg.snapshots[0].report.known_skipped == {"train": 0, "valid": 0, "test": 0}


def test_unseen_valid_and_test_triples_are_excluded_and_counted(tmp_path: Path) -> None:
    write_snapshot(
        tmp_path,
        0,
        train=[("a", "r", "b")],
        valid=[("a", "r", "x"), ("b", "r", "a")],  # x appears in no train file
        test=[("a", "new", "b"), ("x", "r", "a"), ("b", "r", "b")],  # nor does relation "new"
    )
    write_snapshot(
        tmp_path,
        1,
        train=[("x", "r", "c")],  # x is trained now; "new" still is not
        test=[("x", "r", "a"), ("a", "new", "c")],
    )
    kg = GrowingKG.load(tmp_path)
    first, second = kg.snapshots
    assert first.report.unseen_excluded == {"valid": 1, "test": 2}
    assert first.valid.tolist() == [[1, 0, 0]]
    assert first.test.tolist() == [[1, 0, 1]]
    assert "x" in kg.entities and "new" not in kg.relations  # valid/test never add labels
    assert second.report.unseen_excluded == {"valid": 0, "test": 1}
    assert second.test.tolist() == [[kg.entities.id("x"), 0, 0]]
    assert (second.num_entities, second.num_relations) == (4, 1)


def test_ingest_errors_change_nothing(tmp_path: Path) -> None:
    root = write_dataset(tmp_path)
    kg = GrowingKG()
    kg.ingest(root / "0")
    vocab_dir = tmp_path / "vocab"
    kg.save_vocabularies(vocab_dir)
    saved = {p.name: p.read_bytes() for p in vocab_dir.iterdir()}
    known_before = kg.known_facts(0).clone()
    # snapshot 1 brings new entities in train, but its test file is malformed
    (root / "1" / "test.txt").write_bytes(b"e\ts\tb\nbroken line\n")
    with pytest.raises(SnapshotError, match=r"test.txt:2: expected 3 tab-separated fields, found 1"):
        kg.ingest(root / "1")
    assert (len(kg.entities), len(kg.relations), len(kg.snapshots)) == (3, 2, 1)
    assert "d" not in kg.entities and "s" not in kg.relations
    assert torch.equal(kg.known_facts(0), known_before)
    kg.save_vocabularies(vocab_dir)
    assert {p.name: p.read_bytes() for p in vocab_dir.iterdir()} == saved
    # fixing the file, the same snapshot ingests as if the failure never happened
    (root / "1" / "test.txt").write_text("e\ts\tb\n", encoding="utf-8")
    snapshot = kg.ingest(root / "1")
    assert snapshot.index == 1
    assert kg.entities.labels == ["a", "b", "c", "d", "e"]
    assert snapshot.test.tolist() == [[4, 2, 1]]


def test_leakage_error_changes_nothing(tmp_path: Path) -> None:
    snap = write_snapshot(tmp_path, 0, train=[("a", "r", "b")], test=[("a", "r", "b")])
    kg = GrowingKG()
    with pytest.raises(SnapshotError, match="leakage between splits"):
        kg.ingest(snap)
    assert (len(kg.entities), len(kg.relations), kg.snapshots) == (0, 0, [])


def test_snapshots_must_be_ingested_in_order(tmp_path: Path) -> None:
    root = write_dataset(tmp_path)
    kg = GrowingKG()
    with pytest.raises(ValueError, match="the next one is 0, got index=1"):
        kg.ingest(root / "1", index=1)
    assert kg.ingest(root / "0", index=0).index == 0
    assert kg.ingest(root / "1").index == 1


def test_resuming_from_saved_vocabularies_gives_identical_ids(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "data")
    fresh = GrowingKG.load(root)
    # vocabularies saved after snapshot 0, and after the last one
    partial = GrowingKG.load(root, upto=0)
    partial.save_vocabularies(tmp_path / "after0")
    fresh.save_vocabularies(tmp_path / "after2")
    for saved in ("after0", "after2"):
        entities, relations = GrowingKG.load_vocabularies(tmp_path / saved)
        before = entities.labels
        resumed = GrowingKG.load(root, entities=entities, relations=relations)
        assert entities.labels == before  # the arguments are copied, never mutated
        assert resumed.entities.labels == fresh.entities.labels
        assert resumed.relations.labels == fresh.relations.labels
        for a, b in zip(fresh.snapshots, resumed.snapshots, strict=True):
            assert torch.equal(a.facts, b.facts)
            assert (a.num_entities, a.num_relations) == (b.num_entities, b.num_relations)
            assert a.report == b.report


def test_resumed_vocabulary_is_never_renumbered(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    snap = write_snapshot(tmp_path, 0, train=[("a", "r", "b"), ("b", "r", "c")], test=[("z", "r", "a")])
    entities = Vocabulary(["z", "b", "a"], kind="entity")  # not in first-appearance order; z never trained
    kg = GrowingKG(entities, Vocabulary(kind="relation"))
    with caplog.at_level(logging.WARNING, logger="evergraph.kg.engine.ingest"):
        snapshot = kg.ingest(snap)
    assert kg.entities is entities
    assert entities.labels == ["z", "b", "a", "c"]  # kept, new label appended
    assert snapshot.train.tolist() == [[2, 0, 1], [1, 0, 3]]
    assert snapshot.report.unseen_excluded == {"valid": 0, "test": 1}  # z is known but never trained
    assert snapshot.num_entities == 4
    assert "1 entity id(s)" in caplog.text


def test_known_and_train_facts(tmp_path: Path) -> None:
    kg = GrowingKG.load(write_dataset(tmp_path))
    assert kg.train_facts(0).shape == (3, 3)
    assert kg.train_facts(2).shape == (8, 3)
    assert kg.known_facts(0).shape == (5, 3)
    assert kg.known_facts(2).shape == (14, 3)
    assert torch.equal(kg.known_facts(1), torch.cat([kg.snapshots[0].facts, kg.snapshots[1].facts]))
    assert kg.train_facts(1) is kg.train_facts(1)  # cached
    assert kg.known_facts(1) is kg.known_facts(1)
    with pytest.raises(IndexError, match="no snapshot 3"):
        kg.known_facts(3)
    with pytest.raises(IndexError):
        GrowingKG().train_facts(0)


def test_load_upto_and_names(tmp_path: Path) -> None:
    root = write_dataset(tmp_path)
    (root / "entity_names.tsv").write_text("a\tAlice\nb\tBob\n", encoding="utf-8")
    (root / "relation_names.tsv").write_text("r\tknows\n", encoding="utf-8")
    kg = GrowingKG.load(root, upto=1)
    assert len(kg.snapshots) == 2
    assert kg.entity_names == {"a": "Alice", "b": "Bob"}
    assert kg.relation_names == {"r": "knows"}
    with pytest.raises(SnapshotError, match="asked for snapshots up to 3; the dataset has 0..2"):
        GrowingKG.load(root, upto=3)
    assert GrowingKG.load(root).entity_names == {"a": "Alice", "b": "Bob"}


def test_load_rejects_bad_names_and_layouts(tmp_path: Path) -> None:
    root = write_dataset(tmp_path)
    (root / "relation_names.tsv").write_text("r knows\n", encoding="utf-8")
    with pytest.raises(SnapshotError, match=r"relation_names.tsv:1: expected 2 tab-separated fields"):
        GrowingKG.load(root)
    (root / "relation_names.tsv").unlink()
    write_snapshot(root, 4, train=[("a", "r", "b")])
    with pytest.raises(SnapshotError, match="missing 3"):
        GrowingKG.load(root)


def test_failed_load_leaves_passed_vocabularies_alone(tmp_path: Path) -> None:
    root = write_dataset(tmp_path)
    (root / "2" / "train.txt").write_bytes(b"f\tr\ta\nbad\n")
    entities, relations = Vocabulary(kind="entity"), Vocabulary(kind="relation")
    with pytest.raises(SnapshotError, match="train.txt:2"):
        GrowingKG.load(root, entities=entities, relations=relations)
    assert (len(entities), len(relations)) == (0, 0)


@pytest.mark.slow  # reads the whole ENTITY benchmark (/work/shared)
def test_entity_benchmark(caplog: pytest.LogCaptureFixture) -> None:
    if not ENTITY_DIR.is_dir():
        pytest.skip(f"benchmark data not available at {ENTITY_DIR.resolve()}")
    with caplog.at_level(logging.INFO, logger="evergraph.kg.engine.ingest"):
        kg = GrowingKG.load(ENTITY_DIR)
    # the data README: entities / relations so far after each snapshot
    assert [s.num_entities for s in kg.snapshots] == [2909, 5817, 8725, 11633, 14541]
    assert [s.num_relations for s in kg.snapshots] == [233, 236, 236, 237, 237]
    assert [s.train.shape[0] for s in kg.snapshots] == [27832, 43265, 44269, 42302, 28394]
    assert [s.test.shape[0] for s in kg.snapshots] == [9278, 14423, 14758, 14102, 9466]
    assert len(kg.entities) == 14541
    assert kg.known_facts(4).shape == (310116, 3)
    assert "snapshot 4" in caplog.text


def test_load_shared_reuses_one_load_until_a_file_changes(example_data, tmp_path) -> None:
    import shutil

    from evergraph.kg.engine.ingest import load_shared

    data = tmp_path / "data"
    shutil.copytree(example_data, data)
    first = load_shared(data, upto=1)
    assert load_shared(data, upto=1) is first
    assert load_shared(data, upto=0) is not first and len(load_shared(data, upto=0).snapshots) == 1
    last = len(list(p for p in data.iterdir() if p.name.isdigit())) - 1
    assert load_shared(data) is load_shared(data, upto=last)  # "all" is "up to the last"
    train = data / "1" / "train.txt"
    train.write_text("".join(train.read_text().splitlines(keepends=True)[:-1]))
    changed = load_shared(data, upto=1)
    assert changed is not first and len(changed.snapshots[1].train) == len(first.snapshots[1].train) - 1


def test_a_prefix_of_the_whole_load_is_the_load_up_to_that_snapshot(example_data) -> None:
    whole = GrowingKG.load(example_data)
    for upto in range(len(whole.snapshots)):
        view, fresh = whole.prefix(upto), GrowingKG.load(example_data, upto=upto)
        assert view.entities.labels == fresh.entities.labels and view.relations.labels == fresh.relations.labels
        assert view.entities.get(fresh.entities.label(len(fresh.entities) - 1)) == len(fresh.entities) - 1
        if len(fresh.entities) < len(whole.entities):  # a later entity is not in the view
            assert whole.entities.label(len(fresh.entities)) not in view.entities
        assert [s.content_hash for s in view.snapshots] == [s.content_hash for s in fresh.snapshots]
        assert torch.equal(view.known_facts(upto), fresh.known_facts(upto))
        assert torch.equal(view.train_facts(upto), fresh.train_facts(upto))
        assert torch.equal(view.retired_entities(upto), fresh.retired_entities(upto))
    assert whole.prefix(len(whole.snapshots) - 1) is whole
    with pytest.raises(IndexError):
        whole.prefix(len(whole.snapshots))
    with pytest.raises(ValueError, match="read-only"):
        whole.prefix(0).ingest(example_data / "1")


def test_load_shared_serves_fewer_snapshots_from_the_whole_load(example_data, tmp_path) -> None:
    import shutil

    from evergraph.kg.engine.ingest import load_shared

    data = tmp_path / "data"
    shutil.copytree(example_data, data)
    whole = load_shared(data)
    view = load_shared(data, upto=1)
    assert view.snapshots[1] is whole.snapshots[1] and len(view.snapshots) == 2  # nothing read again
    assert load_shared(data, upto=1) is view
    later = data / "2" / "test.txt"  # a later snapshot changed: the view still holds what 0..1 say
    later.write_text("".join(later.read_text().splitlines(keepends=True)[:-1]))
    assert load_shared(data, upto=1) is view and load_shared(data) is not whole
    train = data / "1" / "train.txt"  # its own files changed: read again, not taken from a stale whole load
    train.write_text("".join(train.read_text().splitlines(keepends=True)[:-1]))
    again = load_shared(data, upto=1)
    assert again is not view and len(again.snapshots[1].train) == len(view.snapshots[1].train) - 1
