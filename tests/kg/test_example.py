"""Tests of the built-in example dataset generator (``evergraph.kg.engine.example``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evergraph.kg.engine.example import EXAMPLE_RELATIONS, write_example_dataset
from evergraph.kg.errors import EvergraphError, ExampleTargetError

SPLITS = ("train", "valid", "test")
Triple = tuple[str, str, str]


def read_tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def read_snapshots(root: Path) -> list[dict[str, list[Triple]]]:
    snapshots: list[dict[str, list[Triple]]] = []
    n = 0
    while (root / str(n)).is_dir():
        parts: dict[str, list[Triple]] = {}
        for split in SPLITS:
            lines = (root / str(n) / f"{split}.txt").read_text(encoding="utf-8").splitlines()
            parts[split] = [tuple(line.split("\t")) for line in lines]  # type: ignore[misc]
        snapshots.append(parts)
        n += 1
    return snapshots


def read_names(path: Path) -> dict[str, str]:
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    assert all(len(row) == 2 for row in rows)
    return dict((key, value) for key, value in rows)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_example_dataset(tmp_path_factory.mktemp("small") / "data", seed=0, scale=0.5)


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_example_dataset(tmp_path_factory.mktemp("full") / "data", seed=0)


def test_deterministic_given_seed(tmp_path: Path) -> None:
    a = write_example_dataset(tmp_path / "a", seed=7, scale=0.5)
    b = write_example_dataset(tmp_path / "b", seed=7, scale=0.5)
    c = write_example_dataset(tmp_path / "c", seed=8, scale=0.5)
    assert read_tree(a) == read_tree(b)
    assert read_tree(a) != read_tree(c)


def test_layout_and_names_cover_every_id(small: Path) -> None:
    expected = ["0", "1", "2", "3", "4", "entity_names.tsv", "relation_names.tsv"]
    assert sorted(p.name for p in small.iterdir() if not p.name.startswith(".")) == expected
    for n in range(5):
        assert sorted(p.name for p in (small / str(n)).iterdir()) == ["test.txt", "train.txt", "valid.txt"]
    entities = read_names(small / "entity_names.tsv")
    relations = read_names(small / "relation_names.tsv")
    used_entities = {e for snap in read_snapshots(small) for part in snap.values() for h, _, t in part for e in (h, t)}
    used_relations = {r for snap in read_snapshots(small) for part in snap.values() for _, r, _ in part}
    assert used_entities == set(entities)
    assert used_relations == set(relations)
    assert all(relations[r] == EXAMPLE_RELATIONS[r] for r in relations)
    assert entities["country/france"] == "France"
    assert relations["born_in"] == "born in"
    kinds = {e.split("/")[0] for e in entities}
    assert kinds == {"person", "city", "country", "company", "film"}


def test_lines_are_clean_tab_separated(small: Path) -> None:
    files = [p for p in sorted(small.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    assert len(files) == 5 * 3 + 2
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert text.endswith("\n") and "\r" not in text
        fields = 2 if path.suffix == ".tsv" else 3
        for line in text.splitlines():
            parts = line.split("\t")
            assert len(parts) == fields, (path, line)
            assert all(p and p == p.strip() for p in parts), (path, line)
            ids = parts if fields == 3 else parts[:1]
            assert all(not any(ch.isspace() for ch in i) for i in ids), (path, line)


def test_no_fact_repeated_across_snapshots_or_splits(small: Path) -> None:
    facts = [f for snap in read_snapshots(small) for part in snap.values() for f in part]
    assert len(facts) == len(set(facts))
    assert all(h != t for h, _, t in facts)


def test_eval_facts_only_use_what_training_has_seen(small: Path) -> None:
    seen_entities: set[str] = set()
    seen_relations: set[str] = set()
    for snap in read_snapshots(small):
        for h, r, t in snap["train"]:
            seen_entities.update((h, t))
            seen_relations.add(r)
        for split in ("valid", "test"):
            assert snap[split], split
            for h, r, t in snap[split]:
                assert h in seen_entities and t in seen_entities and r in seen_relations, (h, r, t)


def test_graph_grows(small: Path) -> None:
    seen_entities: set[str] = set()
    first_seen: dict[str, int] = {}
    for n, snap in enumerate(read_snapshots(small)):
        facts = [f for part in snap.values() for f in part]
        entities = {e for h, _, t in facts for e in (h, t)}
        new = entities - seen_entities
        assert new, f"snapshot {n} brings no new entity"
        if n:
            assert {e.split("/")[0] for e in new} >= {"person", "company", "film"}
            assert entities & seen_entities, f"snapshot {n} is not connected to earlier ones"
        seen_entities |= entities
        for _, r, _ in facts:
            first_seen.setdefault(r, n)
    assert any(n > 0 for n in first_seen.values())
    assert first_seen["spouse_of"] == 2


def test_regularities_hold_mostly(full: Path) -> None:
    facts = [f for snap in read_snapshots(full) for part in snap.values() for f in part]
    located = {h: t for h, r, t in facts if r == "located_in"}
    born = {h: t for h, r, t in facts if r == "born_in"}
    citizen = {(h, t) for h, r, t in facts if r == "citizen_of"}
    agree = sum((p, located[c]) in citizen for p, c in born.items())
    assert agree / len(born) > 0.8
    friends = {(h, t) for h, r, t in facts if r == "friend_of"}
    assert sum((t, h) in friends for h, t in friends) == len(friends)  # symmetric


def test_sizes_at_scale_one(full: Path) -> None:
    snapshots = read_snapshots(full)
    assert len(snapshots) == 5
    entities = read_names(full / "entity_names.tsv")
    total = sum(len(part) for snap in snapshots for part in snap.values())
    assert 400 <= len(entities) <= 700
    assert 5000 <= total <= 8000
    for snap in snapshots:
        n_train, n_valid, n_test = (len(snap[s]) for s in SPLITS)
        assert 2.5 <= n_train / n_valid <= 3.6 and 2.5 <= n_train / n_test <= 3.6
        assert 0.8 <= n_valid / n_test <= 1.25


def test_other_snapshot_counts_and_scales(tmp_path: Path) -> None:
    one = write_example_dataset(tmp_path / "one", num_snapshots=1, scale=0.2)
    assert len(read_snapshots(one)) == 1
    two = read_snapshots(write_example_dataset(tmp_path / "two", num_snapshots=2, scale=0.2))
    assert {r for part in two[1].values() for _, r, _ in part} >= {"parent_of", "directed"}
    with pytest.raises(ValueError):
        write_example_dataset(tmp_path / "bad", num_snapshots=0)
    with pytest.raises(ValueError):
        write_example_dataset(tmp_path / "bad", scale=0)


def test_overwrites_its_own_output(tmp_path: Path) -> None:
    out = tmp_path / "data"
    out.mkdir()  # an empty directory is fine
    write_example_dataset(out, seed=1, scale=0.3)
    first = read_tree(out)
    write_example_dataset(out, seed=2, scale=0.3)
    assert read_tree(out) != first
    write_example_dataset(str(out), seed=1, scale=0.3)
    assert read_tree(out) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temporary leftovers


@pytest.mark.parametrize("stray", ["notes.txt", "0/extra.txt"])
def test_refuses_foreign_directory(tmp_path: Path, stray: str) -> None:
    out = tmp_path / "data"
    if stray == "notes.txt":
        out.mkdir()
    else:
        write_example_dataset(out, scale=0.3)
    (out / stray).write_text("mine\n", encoding="utf-8")
    before = read_tree(out)
    with pytest.raises(ExampleTargetError, match="does not look like an example dataset") as info:
        write_example_dataset(out, scale=0.3)
    assert isinstance(info.value, EvergraphError)
    assert read_tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_refuses_same_layout_without_marker(tmp_path: Path) -> None:
    out = write_example_dataset(tmp_path / "data", scale=0.3)
    (out / ".evergraph-example").unlink()  # a real dataset in the same format must not be replaced
    with pytest.raises(ExampleTargetError):
        write_example_dataset(out, scale=0.3)


def test_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x", encoding="utf-8")
    with pytest.raises(ExampleTargetError, match="not a directory"):
        write_example_dataset(target)
