"""Tests of evergraph.kg.engine.vocab: the append-only label <-> id map and its file format."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evergraph.kg.engine.vocab import Vocabulary
from evergraph.kg.errors import EvergraphError, UnknownLabelError, VocabularyFileError


def test_ids_are_given_in_order_of_first_addition() -> None:
    vocab = Vocabulary(["b", "a", "b", "c"], kind="entity")
    assert len(vocab) == 3
    assert vocab.labels == ["b", "a", "c"]
    assert list(vocab) == ["b", "a", "c"]
    assert vocab.ids(["c", "b", "a"]) == [2, 0, 1]
    assert vocab.label(1) == "a"
    assert "a" in vocab and "z" not in vocab


def test_add_returns_the_existing_id_or_appends() -> None:
    vocab = Vocabulary(["x", "y"])
    assert vocab.add("y") == 1
    assert vocab.add("z") == 2
    assert vocab.add("x") == 0
    assert vocab.labels == ["x", "y", "z"]


def test_labels_is_a_copy() -> None:
    vocab = Vocabulary(["x"])
    labels = vocab.labels
    labels.append("y")
    assert vocab.labels == ["x"]
    assert len(vocab) == 1


def test_unknown_label_is_a_clear_key_error() -> None:
    vocab = Vocabulary(["x", "y"], kind="entity")
    with pytest.raises(UnknownLabelError) as info:
        vocab.id("nope")
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, EvergraphError)
    assert str(info.value) == "unknown entity 'nope': not in the vocabulary (2 labels)"
    with pytest.raises(KeyError, match="unknown entity 'q'"):
        vocab.ids(["x", "q"])
    assert vocab.get("nope") is None
    assert vocab.get("y") == 1


def test_label_out_of_range() -> None:
    vocab = Vocabulary(["x"], kind="relation")
    with pytest.raises(IndexError, match="no relation with id 1"):
        vocab.label(1)
    with pytest.raises(IndexError):
        vocab.label(-1)


@pytest.mark.parametrize("bad", ["a\tb", "a\nb", "tail\n", ""])
def test_labels_the_file_format_cannot_hold_are_rejected(bad: str) -> None:
    vocab = Vocabulary(["ok"])
    with pytest.raises(ValueError):
        vocab.add(bad)
    assert vocab.labels == ["ok"]
    with pytest.raises(ValueError):
        Vocabulary(["ok", bad])


def test_is_prefix_of() -> None:
    small = Vocabulary(["a", "b"])
    assert small.is_prefix_of(Vocabulary(["a", "b", "c"]))
    assert small.is_prefix_of(Vocabulary(["a", "b"]))
    assert Vocabulary().is_prefix_of(small)
    assert not small.is_prefix_of(Vocabulary(["b", "a", "c"]))
    assert not small.is_prefix_of(Vocabulary(["a"]))


def test_copy_is_independent() -> None:
    vocab = Vocabulary(["a"], kind="entity")
    clone = vocab.copy()
    clone.add("b")
    assert vocab.labels == ["a"]
    assert clone.labels == ["a", "b"]
    assert clone.kind == "entity"


def test_save_load_round_trip(tmp_path: Path) -> None:
    labels = ["/m/06rf7", "Zoë Saldaña", "with space", "/film/film/genre", "semi;colon"]
    vocab = Vocabulary(labels, kind="entity")
    path = tmp_path / "entities.tsv"
    vocab.save(path)
    assert path.read_text(encoding="utf-8") == "".join(f"{i}\t{label}\n" for i, label in enumerate(labels))
    loaded = Vocabulary.load(path, kind="entity")
    assert loaded.labels == labels
    assert loaded.kind == "entity"
    assert loaded.ids(labels) == list(range(len(labels)))
    assert loaded.add("new") == len(labels)


def test_empty_vocabulary_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "v.tsv"
    Vocabulary().save(path)
    assert path.read_bytes() == b""
    assert len(Vocabulary.load(path)) == 0


def test_save_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "v.tsv"
    Vocabulary(["a"]).save(path)
    Vocabulary(["a", "b"]).save(path)  # overwrite
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.tsv"]
    assert Vocabulary.load(path).labels == ["a", "b"]


def test_failed_save_keeps_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "v.tsv"
    Vocabulary(["a"]).save(path)
    before = path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        Vocabulary(["a", "b", "c"]).save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.tsv"]


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Vocabulary.load(tmp_path / "nope.tsv")


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        (b"0\ta\n2\tb\n", 2, "expected id 1, found '2'"),
        (b"1\ta\n", 1, "expected id 0, found '1'"),
        (b"0\ta\n1 b\n", 2, "expected 2 tab-separated fields, found 1"),
        (b"0\ta\n1\tb\tc\n", 2, "expected 2 tab-separated fields, found 3"),
        (b"0\ta\n1\t\n", 2, "empty label"),
        (b"0\ta\n1\ta\n", 2, "label 'a' already has id 0 (line 1)"),
        (b"0\ta\n1\t\xff\n", 2, "invalid UTF-8"),
        (b"0\ta\n\n1\tb\n", 2, "expected 2 tab-separated fields, found 1"),
    ],
)
def test_load_rejects_malformed_files_naming_file_and_line(
    tmp_path: Path, content: bytes, line: int, reason: str
) -> None:
    path = tmp_path / "entities.tsv"
    path.write_bytes(content)
    with pytest.raises(VocabularyFileError) as info:
        Vocabulary.load(path)
    assert f"{path}:{line}: {reason}" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_load_collects_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "entities.tsv"
    path.write_bytes(b"0\ta\n5\tb\nbroken\n3\tc\n")
    with pytest.raises(VocabularyFileError) as info:
        Vocabulary.load(path)
    assert [p.line for p in info.value.problems] == [2, 3]


def test_prefix_is_the_vocabulary_as_it_was() -> None:
    vocab = Vocabulary(["a", "b", "c"], kind="entity")
    first = vocab.prefix(2)
    assert first.labels == ["a", "b"] and first.id("b") == 1 and "c" not in first and first.kind == "entity"
    first.add("z")  # independent of the vocabulary it came from
    assert "z" not in vocab and vocab.prefix(3).labels == vocab.labels and len(vocab.prefix(0)) == 0
    with pytest.raises(IndexError):
        vocab.prefix(4)
