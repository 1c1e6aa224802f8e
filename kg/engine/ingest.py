"""Reading, validating and ingesting growing-KG snapshots.

A dataset is a directory ``DIR/<n>/{train,valid,test}.txt`` with ``n = 0, 1, 2, ...`` (contiguous), each line
``head<TAB>relation<TAB>tail``, each snapshot holding only the facts new in it. ``DIR/entity_names.tsv`` and
``DIR/relation_names.tsv`` (``id<TAB>readable name``) are optional.

Validation is strict and complete: every problem of a snapshot is collected with its ``file:line`` and raised
as one :class:`~evergraph.kg.errors.SnapshotError`; nothing is stored unless the whole snapshot is valid. What is *not*
an error is an explicit, counted policy (see :class:`~evergraph.kg.engine.snapshot.IngestReport` and
:meth:`GrowingKG.ingest`).
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import os
import re
import threading
import time
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import torch

from evergraph.kg.engine.snapshot import IngestReport, Snapshot, retained, retracted_facts
from evergraph.kg.engine.vocab import Vocabulary
from evergraph.kg.errors import Problem, SnapshotError

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_FIELD_CHARS",
    "SPLITS",
    "GrowingKG",
    "RawSnapshot",
    "list_snapshot_dirs",
    "read_names",
    "read_snapshot_dir",
    "read_split",
    "text_field_problem",
]

Triple = tuple[str, str, str]

SPLITS: tuple[str, ...] = ("train", "valid", "test")
"""The split files of a snapshot, in the order they are read and hashed."""

ENTITY_NAMES_FILE = "entity_names.tsv"
RELATION_NAMES_FILE = "relation_names.tsv"
ENTITY_VOCAB_FILE = "entities.tsv"
RELATION_VOCAB_FILE = "relations.tsv"

_FIELDS = ("head", "relation", "tail")
_MISSING_SPLIT = "missing split file; every snapshot needs train.txt, valid.txt and test.txt"
_SNAPSHOT_NAME = re.compile(r"[0-9]+")

MAX_FIELD_CHARS = 4096
"""The longest field (label, id or name) accepted, in characters."""
_FORBIDDEN_CHARS = "\x00-\x08\x0a-\x1f\x7f-\x9f\u200b\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff"
"""Characters no field may hold (the body of a regex class): control characters (C0 but the tab, DEL, C1: NUL,
CR, ESC, ...), the zero-width space, line and paragraph separators, bidirectional embeddings, overrides and
isolates, and U+FEFF (a byte-order mark inside the text). Each would make a label that looks like another one."""
_FORBIDDEN = re.compile(f"[{_FORBIDDEN_CHARS}]")


# ----------------------------------------------------------------------------------------------- reading


@dataclass
class _ScannedFile:
    """One tab-separated file after line-level validation (internal)."""

    rows: list[tuple[str, ...]] = field(default_factory=list)
    line_numbers: list[int] = field(default_factory=list)
    duplicates: int = 0
    problems: list[Problem] = field(default_factory=list)
    data: bytes = b""
    bom_stripped: bool = False


def _decoded_lines(data: bytes, where: str, problems: list[Problem]) -> list[tuple[int, str]]:
    """Split ``data`` into ``(line number, text)`` on ``\\n`` only; a final newline ends the last line.

    Lines that are not valid UTF-8 become problems and are left out.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:  # fast path: splitting valid UTF-8 on "\n" keeps every line valid
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        return list(enumerate(lines, start=1))
    raw_lines = data.split(b"\n")
    if raw_lines[-1] == b"":
        raw_lines.pop()
    decoded: list[tuple[int, str]] = []
    for number, raw in enumerate(raw_lines, start=1):
        try:
            decoded.append((number, raw.decode("utf-8")))
        except UnicodeDecodeError as exc:
            problems.append(Problem(where, number, f"invalid UTF-8 (byte {exc.start} of the line)"))
    return decoded


def _clean_line_pattern(fields: int) -> re.Pattern[str]:
    """A line of ``fields`` non-empty tab-separated fields with no whitespace at either end of any field and no
    forbidden character (:data:`_FORBIDDEN_CHARS`) in any (the fast path; :func:`text_field_problem` says why)."""
    edge, inner = f"[^\\s{_FORBIDDEN_CHARS}]", f"[^\\t{_FORBIDDEN_CHARS}]"
    field_pattern = f"{edge}(?:{inner}*{edge})?"
    return re.compile("\t".join([field_pattern] * fields))


def text_field_problem(value: str, *, name: str, max_chars: int = MAX_FIELD_CHARS) -> str | None:
    """Why ``value`` cannot be the field ``name`` (``"head"``, ``"id"``, ...) of a record, or None when it can.

    The rules of every text field of every source: not empty, no whitespace at either end (a ``\\r`` left by a
    ``\\r\\n`` line ending is named as such), no forbidden character (control characters such as NUL,
    zero-width space, line separators, bidirectional controls, a byte-order mark inside the text: they make
    labels that look like others), at most ``max_chars`` (default :data:`MAX_FIELD_CHARS`) characters. A reader
    turns a reason into a ``Problem(path, line, reason)``; the reason says what to fix.
    """
    if value == "":
        return f"empty {name}"
    if value != value.strip():
        hint = " (a \\r\\n line ending? use \\n)" if value.endswith("\r") else ""
        return f"leading/trailing whitespace around the {name} field{hint}"
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        char = bad.group()
        return (
            f"forbidden character U+{ord(char):04X} ({_char_name(char)}) in the {name} field at character "
            f"{bad.start() + 1}; remove it (control and invisible characters make labels that look like others)"
        )
    if len(value) > max_chars:
        return f"the {name} field has {len(value)} characters, more than the {max_chars} allowed"
    return None


def _char_name(char: str) -> str:
    names = {"\x00": "NUL", "\r": "carriage return", "\x1b": "escape", "\x7f": "delete", "\ufeff": "byte-order mark"}
    return names.get(char) or unicodedata.name(char, "control character").lower()


def _line_problems(where: str, number: int, line: str, field_names: tuple[str, ...]) -> list[Problem]:
    """Every problem of one line (the slow path, for lines that are not clean)."""
    if line == "":
        return [Problem(where, number, "empty line")]
    fields = line.split("\t")
    expected = len(field_names)
    if len(fields) != expected:
        return [Problem(where, number, f"expected {expected} tab-separated fields, found {len(fields)}")]
    problems = []
    for name, value in zip(field_names, fields, strict=True):
        reason = text_field_problem(value, name=name)
        if reason is not None:
            problems.append(Problem(where, number, reason))
    return problems


def _scan(path: Path, field_names: tuple[str, ...], *, missing: str) -> _ScannedFile:
    """Read ``path`` and check every line has ``len(field_names)`` clean tab-separated fields.

    Collects all problems (never stops at the first); ``missing`` is the reason given for a missing file.
    Repeated identical rows are dropped and counted.
    """
    where = str(path)
    scanned = _ScannedFile()
    if not path.is_file():
        scanned.problems.append(Problem(where, 0, missing))
        return scanned
    scanned.data = path.read_bytes()
    text = scanned.data
    if text.startswith(codecs.BOM_UTF8):  # policy: a leading UTF-8 byte-order mark is stripped and counted
        text, scanned.bom_stripped = text[len(codecs.BOM_UTF8) :], True
        logger.info("%s: stripped a leading UTF-8 byte-order mark", path)
    clean = _clean_line_pattern(len(field_names)).fullmatch
    seen: set[tuple[str, ...]] = set()
    rows, line_numbers = scanned.rows, scanned.line_numbers
    for number, line in _decoded_lines(text, where, scanned.problems):
        # slow path for a line that is not clean; a line it finds nothing wrong with is kept, never dropped
        if len(line) > MAX_FIELD_CHARS or clean(line) is None:
            line_problems = _line_problems(where, number, line, field_names)
            if line_problems:
                scanned.problems.extend(line_problems)
                continue
        row = tuple(line.split("\t"))
        if row in seen:
            scanned.duplicates += 1
            continue
        seen.add(row)
        rows.append(row)
        line_numbers.append(number)
    scanned.problems.sort(key=lambda problem: problem.line)  # UTF-8 problems were found first
    return scanned


def read_split(path: str | os.PathLike[str]) -> tuple[list[Triple], int]:
    """Read one split file: its unique ``(head, relation, tail)`` triples in file order, and the number of
    duplicate lines dropped.

    Errors (all collected, raised together as one :class:`SnapshotError`, each naming ``file:line``): missing
    file, invalid UTF-8, a line without exactly 3 tab-separated fields, an empty field, whitespace around a
    field (a ``\\r`` of a ``\\r\\n`` line ending included), an empty line, a forbidden character in a field
    (NUL and other control or invisible characters) or a field over :data:`MAX_FIELD_CHARS` characters (every
    field rule is :func:`text_field_problem`). A final newline is fine.
    Policies: a line repeating an earlier line of the same file is dropped and counted; a leading UTF-8
    byte-order mark is stripped (counted in the snapshot's ingest report as ``bom_stripped``).
    """
    scanned = _scan(Path(path), _FIELDS, missing=_MISSING_SPLIT)
    if scanned.problems:
        raise SnapshotError(scanned.problems)
    return cast(list[Triple], scanned.rows), scanned.duplicates


@dataclass
class RawSnapshot:
    """One validated snapshot directory, still as labels.

    ``duplicates_dropped`` maps split name to the number of repeated lines dropped. ``content_hash`` is the
    hex SHA-256 of the three files in the order train, valid, test, each framed by its split name and byte
    length (so moving a line from one split to another changes the hash).
    """

    path: Path
    train: list[Triple]
    valid: list[Triple]
    test: list[Triple]
    duplicates_dropped: dict[str, int]
    content_hash: str
    removed: list[Triple] = field(default_factory=list)
    removed_at: list[tuple[str, int]] | None = None
    """Where each removal was read (``file``, ``line``): a removal of an unknown fact is then an error there;
    ``None`` (dump diffs) makes it the counted ``unknown_removed`` policy."""
    counts: dict[str, int] = field(default_factory=dict)
    """What the source reader counted (attributes, names, ...), reported with the snapshot."""
    bom_stripped: dict[str, int] = field(default_factory=dict)
    """Files whose leading UTF-8 byte-order mark was stripped (split or ``removed`` -> 1)."""

    def split(self, name: str) -> list[Triple]:
        """The triples of split ``name`` (``"train"``, ``"valid"`` or ``"test"``)."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        triples: list[Triple] = getattr(self, name)
        return triples


REMOVED_FILE = "removed.txt"
"""Optional in an lkge snapshot: facts of earlier snapshots it retracts (same line format as a split)."""


def _content_hash(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in (*SPLITS, "removed"):
        if name not in files:  # removed.txt is optional; without it the hash is what it always was
            continue
        data = files[name]
        digest.update(name.encode("ascii") + b"\0" + len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def read_snapshot_dir(path: str | os.PathLike[str]) -> RawSnapshot:
    """Read and validate the three split files of one snapshot directory.

    Every rule of :func:`read_split` applies to each file; in addition the same triple in two splits of the
    snapshot is an error (leakage), reported at the later file's line and naming the earlier file and line.
    All problems of the three files are raised together as one :class:`SnapshotError`.
    """
    path = Path(path)
    if not path.is_dir():
        raise SnapshotError(
            [Problem(str(path), 0, "snapshot directory not found (expected train.txt, valid.txt, test.txt)")]
        )
    problems: list[Problem] = []
    scanned: dict[str, _ScannedFile] = {}
    first_seen: dict[tuple[str, ...], tuple[str, int]] = {}  # triple -> (file name, line) of first split
    for name in SPLITS:
        file = path / f"{name}.txt"
        file_name = file.name
        result = _scan(file, _FIELDS, missing=_MISSING_SPLIT)
        scanned[name] = result
        file_problems = list(result.problems)
        for row, number in zip(result.rows, result.line_numbers, strict=True):
            here = (file_name, number)
            earlier = first_seen.setdefault(row, here)
            if earlier is not here:  # rows are unique within a file, so this is another split
                file_problems.append(
                    Problem(
                        str(file),
                        number,
                        f"triple also in {earlier[0]} line {earlier[1]} (leakage between splits)",
                    )
                )
        problems.extend(sorted(file_problems, key=lambda problem: problem.line))
    removed_file = path / REMOVED_FILE
    hashed = {name: scanned[name].data for name in SPLITS}
    removed: list[Triple] = []
    removed_at: list[tuple[str, int]] = []
    if removed_file.is_file():
        result = _scan(removed_file, _FIELDS, missing="")
        file_problems = list(result.problems)
        for row, number in zip(result.rows, result.line_numbers, strict=True):
            earlier = first_seen.get(row)
            if earlier is not None:
                file_problems.append(
                    Problem(str(removed_file), number, f"fact is also added in {earlier[0]} line {earlier[1]}")
                )
        problems.extend(sorted(file_problems, key=lambda problem: problem.line))
        removed = cast(list[Triple], result.rows)
        removed_at = [(str(removed_file), number) for number in result.line_numbers]
        hashed["removed"] = result.data
        if result.bom_stripped:
            scanned["removed"] = result
    if not scanned["train"].rows and not scanned["train"].problems and not removed:
        problems.insert(
            0,
            Problem(
                str(path / "train.txt"),
                0,
                "holds no facts and the snapshot removes none; an empty snapshot would be learned, registered "
                "and served as a model of nothing: add its facts or remove the snapshot directory",
            ),
        )
    if problems:
        raise SnapshotError(problems)
    triples = {name: cast(list[Triple], scanned[name].rows) for name in SPLITS}
    return RawSnapshot(
        path=path,
        train=triples["train"],
        valid=triples["valid"],
        test=triples["test"],
        duplicates_dropped={name: scanned[name].duplicates for name in SPLITS},
        content_hash=_content_hash(hashed),
        removed=removed,
        removed_at=removed_at,
        bom_stripped={name: 1 for name, result in scanned.items() if result.bom_stripped},
    )


def list_snapshot_dirs(dataset_dir: str | os.PathLike[str]) -> list[Path]:
    """The snapshot directories ``dataset_dir/0, 1, 2, ...`` in numeric order.

    Entries whose name is not made of digits (``README.md``, ``entity_names.tsv``, ``notes/``) are ignored.
    Errors (:class:`SnapshotError`): a missing dataset directory, no snapshot directory at all, a gap in the
    numbering, a numbered entry that is not a directory, and a name with a leading zero (``01``).
    """
    root = Path(dataset_dir)
    where = str(root)
    if not root.is_dir():
        raise SnapshotError([Problem(where, 0, "dataset directory not found")])
    problems: list[Problem] = []
    found: dict[int, Path] = {}
    for entry in root.iterdir():
        if not _SNAPSHOT_NAME.fullmatch(entry.name):
            continue
        if entry.name != str(int(entry.name)):
            problems.append(
                Problem(str(entry), 0, f"snapshot directory name with a leading zero; use {int(entry.name)}")
            )
        elif not entry.is_dir():
            problems.append(Problem(str(entry), 0, "a numbered snapshot entry must be a directory"))
        else:
            found[int(entry.name)] = entry
    if not problems and not found:
        problems.append(Problem(where, 0, "no snapshot directories found; expected subdirectories 0, 1, 2, ..."))
    if found:
        missing = sorted(set(range(max(found) + 1)) - set(found))
        if missing:
            shown = ", ".join(str(n) for n in missing[:10]) + (", ..." if len(missing) > 10 else "")
            present = ", ".join(str(n) for n in sorted(found)[:10]) + (", ..." if len(found) > 10 else "")
            problems.append(
                Problem(
                    where,
                    0,
                    f"snapshot directories must be numbered 0, 1, 2, ... without gaps; found {present}; "
                    f"missing {shown}",
                )
            )
    if problems:
        raise SnapshotError(problems, hint="fix the dataset layout and run again")
    return [found[n] for n in sorted(found)]


def read_names(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read an ``id<TAB>readable name`` file (``entity_names.tsv``/``relation_names.tsv``).

    Validated like a split file (2 fields instead of 3; every problem with ``file:line``, raised together as a
    :class:`SnapshotError`). An exactly repeated line is dropped; the same id with two different names is an
    error.
    """
    path = Path(path)
    scanned = _scan(path, ("id", "name"), missing="missing name file")
    names: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for (key, name), number in zip(scanned.rows, scanned.line_numbers, strict=True):
        if key in names:
            scanned.problems.append(
                Problem(str(path), number, f"id {key!r} already named {names[key]!r} on line {first_line[key]}")
            )
            continue
        names[key] = name
        first_line[key] = number
    if scanned.problems:
        raise SnapshotError(sorted(scanned.problems, key=lambda problem: problem.line))
    if scanned.duplicates:
        logger.info("%s: dropped %d repeated line(s)", path, scanned.duplicates)
    return names


# ---------------------------------------------------------------------------------------------- growing KG


def _fact_key(h: int, r: int, t: int) -> int:
    """One int per fact, for compact membership sets (ids below 2**32)."""
    return (h << 64) | (r << 32) | t


def _empty_triples() -> torch.Tensor:
    return torch.empty((0, 3), dtype=torch.long)


def _as_tensor(rows: list[tuple[int, int, int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.long) if rows else _empty_triples()


class GrowingKG:
    """A knowledge graph that grows snapshot by snapshot, with append-only vocabularies.

    ``entities``/``relations`` default to empty vocabularies; pass loaded ones to resume (their ids are kept,
    new labels are appended). ``snapshots`` holds the ingested :class:`Snapshot` objects in order;
    ``entity_names``/``relation_names`` the optional readable names (label -> name, empty if none were read).
    """

    def __init__(self, entities: Vocabulary | None = None, relations: Vocabulary | None = None) -> None:
        self.entities: Vocabulary = entities if entities is not None else Vocabulary(kind="entity")
        self.relations: Vocabulary = relations if relations is not None else Vocabulary(kind="relation")
        self.snapshots: list[Snapshot] = []
        self.entity_names: dict[str, str] = {}
        self.relation_names: dict[str, str] = {}
        self._trained_entities: set[int] = set()  # ids seen in a train file of an ingested snapshot
        self._trained_relations: set[int] = set()
        self._known: set[int] = set()  # _fact_key of every stored fact (all splits, all snapshots)
        self._train_cache: dict[int, torch.Tensor] = {}
        self._known_cache: dict[int, torch.Tensor] = {}
        self._view = False  # a prefix view (:meth:`prefix`): read-only

    def prefix(self, upto: int) -> GrowingKG:
        """Snapshots ``0..upto`` as :meth:`load` ``(..., upto=upto)`` would give them, without reading anything:
        ids are append-only and a snapshot's ingest depends only on the snapshots before it, so the vocabularies
        are prefixes and the snapshots are shared (so are the cached fact tensors, keyed by snapshot). The view is
        read-only (:meth:`ingest` refuses it); ``self`` when ``upto`` is the last snapshot."""
        self._check_upto(upto)
        if upto == len(self.snapshots) - 1:
            return self
        last = self.snapshots[upto]
        view = GrowingKG(self.entities.prefix(last.num_entities), self.relations.prefix(last.num_relations))
        view.snapshots = self.snapshots[: upto + 1]
        view.entity_names, view.relation_names = self.entity_names, self.relation_names
        view._train_cache, view._known_cache = self._train_cache, self._known_cache
        view._view = True
        return view

    def __repr__(self) -> str:
        return (
            f"GrowingKG(snapshots={len(self.snapshots)}, entities={len(self.entities)}, "
            f"relations={len(self.relations)})"
        )

    # ---------------------------------------------------------------------------------------- ingest

    def ingest(self, snapshot_dir: str | os.PathLike[str] | RawSnapshot, *, index: int | None = None) -> Snapshot:
        """Read, validate and add the next snapshot; return it.

        ``index`` defaults to the next position, ``len(self.snapshots)``; snapshots must be ingested in order,
        so any other value is a ``ValueError``.

        All-or-nothing: the whole snapshot is read and validated first (:func:`read_snapshot_dir`); on a
        :class:`SnapshotError` the vocabularies, ``snapshots`` and caches are unchanged.

        Ids: new entities and relations get ids from the *train* file only, in order of first appearance
        (line by line; head, then relation, then tail), appended after the existing ones. Re-ingesting the
        same data, with fresh or with saved vocabularies, gives identical ids; existing ids are never changed.

        Policies (counted per split in the snapshot's :class:`IngestReport` and logged, never errors):

        - ``duplicates_dropped``: a line repeating an earlier line of the same file is dropped.
        - ``known_skipped``: a fact stored by an earlier snapshot (any split there) is skipped.
        - ``unseen_excluded``: a valid/test triple whose head, relation or tail appears in no train file of
          snapshots ``0..index`` is excluded (it could not be learned).
        - ``retracted``: the removals (``removed.txt``, or a dump diff) leave the known facts; a removal of a
          fact that is not known is an error at its ``file:line`` for ``removed.txt`` and the counted
          ``unknown_removed`` policy for dump diffs (the fact was excluded as unseen when it arrived).

        ``snapshot_dir`` may also be an already read :class:`RawSnapshot` (the dumps source makes those).

        ``num_entities``/``num_relations`` of the snapshot are one past the highest id used in training so
        far, which with vocabularies built by ingestion is the vocabulary size. With resumed vocabularies they
        are the same as in the original run (labels not yet seen lie beyond them); if a resumed vocabulary's
        ids are not in first-appearance order, a warning says how many ids below the bound were never trained.
        """
        if self._view:
            raise ValueError("a prefix view of a loaded graph is read-only; ingest into the graph it was taken from")
        expected_index = len(self.snapshots)
        if index is not None and index != expected_index:
            raise ValueError(
                f"snapshots must be ingested in order: the next one is {expected_index}, got index={index}"
            )
        started = time.perf_counter()
        # raises before anything is touched
        raw = snapshot_dir if isinstance(snapshot_dir, RawSnapshot) else read_snapshot_dir(snapshot_dir)

        # Work on copies of the label -> id maps; the vocabularies are only touched in the commit below.
        entity_ids = self.entities.to_dict()
        relation_ids = self.relations.to_dict()
        old_entities, old_relations = len(entity_ids), len(relation_ids)
        known = self._known
        report = IngestReport(duplicates_dropped=dict(raw.duplicates_dropped), bom_stripped=dict(raw.bom_stripped))
        kept: dict[str, list[tuple[int, int, int]]] = {}

        # Train: assign ids to new labels in order of first appearance (head, relation, tail), skip known.
        train_rows: list[tuple[int, int, int]] = []
        skipped = 0
        for h_label, r_label, t_label in raw.train:
            h = entity_ids.get(h_label)
            if h is None:
                h = entity_ids[h_label] = len(entity_ids)
            r = relation_ids.get(r_label)
            if r is None:
                r = relation_ids[r_label] = len(relation_ids)
            t = entity_ids.get(t_label)
            if t is None:
                t = entity_ids[t_label] = len(entity_ids)
            if _fact_key(h, r, t) in known:
                skipped += 1
            else:
                train_rows.append((h, r, t))
        kept["train"] = train_rows
        report.known_skipped["train"] = skipped
        new_entities = list(entity_ids)[old_entities:]  # dicts keep insertion order
        new_relations = list(relation_ids)[old_relations:]
        # Known facts hold only trained ids, so the kept rows add every id this train file brings.
        trained_entities = self._trained_entities.union((h for h, _, _ in train_rows), (t for _, _, t in train_rows))
        trained_relations = self._trained_relations.union(r for _, r, _ in train_rows)

        # Valid/test: exclude triples with a label never trained up to now, skip known ones.
        for name in ("valid", "test"):
            rows: list[tuple[int, int, int]] = []
            skipped = excluded = 0
            for h_label, r_label, t_label in raw.split(name):
                h = entity_ids.get(h_label)
                r = relation_ids.get(r_label)
                t = entity_ids.get(t_label)
                if (
                    h is None
                    or r is None
                    or t is None
                    or h not in trained_entities
                    or t not in trained_entities
                    or r not in trained_relations
                ):
                    excluded += 1
                elif _fact_key(h, r, t) in known:
                    skipped += 1
                else:
                    rows.append((h, r, t))
            kept[name] = rows
            report.known_skipped[name] = skipped
            report.unseen_excluded[name] = excluded

        removed_rows = self._removals(raw, entity_ids, relation_ids, report)
        tensors = {name: _as_tensor(kept[name]) for name in SPLITS}
        num_entities = max(trained_entities, default=-1) + 1
        num_relations = max(trained_relations, default=-1) + 1

        # ---- commit: nothing below can fail on valid data (labels come from validated fields)
        for label in new_entities:
            self.entities.add(label)
        for label in new_relations:
            self.relations.add(label)
        self._trained_entities = trained_entities
        self._trained_relations = trained_relations
        known.difference_update(_fact_key(h, r, t) for h, r, t in removed_rows)
        for name in SPLITS:
            known.update(_fact_key(h, r, t) for h, r, t in kept[name])
        snapshot = Snapshot(
            index=expected_index,
            train=tensors["train"],
            valid=tensors["valid"],
            test=tensors["test"],
            num_entities=num_entities,
            num_relations=num_relations,
            content_hash=raw.content_hash,
            report=report,
            removed=_as_tensor(removed_rows),
        )
        self.snapshots.append(snapshot)

        untrained_e = num_entities - len(trained_entities)
        untrained_r = num_relations - len(trained_relations)
        if untrained_e or untrained_r:
            logger.warning(
                "snapshot %d: vocabulary ids are not in first-appearance order; %d entity id(s) and %d "
                "relation id(s) below the snapshot bounds were never trained",
                expected_index,
                untrained_e,
                untrained_r,
            )
        logger.info(
            "snapshot %d (%s): train/valid/test %d/%d/%d facts, %d entities (+%d), %d relations (+%d), "
            "%.2fs; policies %s",
            expected_index,
            raw.path,
            len(train_rows),
            len(kept["valid"]),
            len(kept["test"]),
            num_entities,
            len(new_entities),
            num_relations,
            len(new_relations),
            time.perf_counter() - started,
            report.to_dict(),
        )
        return snapshot

    def _removals(
        self,
        raw: RawSnapshot,
        entity_ids: dict[str, int],
        relation_ids: dict[str, int],
        report: IngestReport,
    ) -> list[tuple[int, int, int]]:
        """The known facts ``raw`` retracts, as ids; unknown ones are problems (``removed.txt``) or counted."""
        rows: list[tuple[int, int, int]] = []
        problems: list[Problem] = []
        report.source = dict(raw.counts)
        for i, (h_label, r_label, t_label) in enumerate(raw.removed):
            h, r, t = entity_ids.get(h_label), relation_ids.get(r_label), entity_ids.get(t_label)
            if h is not None and r is not None and t is not None and _fact_key(h, r, t) in self._known:
                rows.append((h, r, t))
            elif raw.removed_at is not None:
                where, line = raw.removed_at[i]
                problems.append(
                    Problem(
                        where,
                        line,
                        "removed fact is not a known fact of an earlier snapshot (never added, excluded as unseen, "
                        "or already removed); check its labels or drop the line",
                    )
                )
            else:
                report.unknown_removed += 1
        if problems:
            raise SnapshotError(problems)
        report.retracted = len(rows)
        return rows

    @classmethod
    def load(
        cls,
        dataset_dir: str | os.PathLike[str],
        *,
        upto: int | None = None,
        entities: Vocabulary | None = None,
        relations: Vocabulary | None = None,
        format: str = "auto",
    ) -> GrowingKG:
        """Ingest snapshots ``0..upto`` (all if ``None``) of ``dataset_dir`` in order, and the optional
        ``entity_names.tsv``/``relation_names.tsv``.

        ``format`` (:mod:`evergraph.kg.engine.sources`): ``auto`` (default: ``source.json``, else what the folder
        holds), ``lkge`` (numbered snapshot folders) or ``dumps`` (a folder of full exports, diffed).

        ``entities``/``relations`` (e.g. from :meth:`load_vocabularies`) are copied, never mutated, so a
        failed load leaves them as they were; read the grown ones from the result. Errors: any
        :class:`SnapshotError` of the layout, the name files or a snapshot; ``upto`` beyond the last snapshot.
        """
        from evergraph.kg.engine.sources import open_source  # the sources build on this module's readers

        source = open_source(dataset_dir, format=format)
        items = source.snapshots(upto=upto)  # a dumps folder is read and validated whole here
        entity_names, relation_names = source.names()
        kg = cls(
            entities.copy() if entities is not None else None,
            relations.copy() if relations is not None else None,
        )
        kg.entity_names = entity_names
        kg.relation_names = relation_names
        for i, item in enumerate(items):
            kg.ingest(item, index=i)
        return kg

    # ----------------------------------------------------------------------------------------- facts

    def _check_upto(self, upto: int) -> None:
        if not 0 <= upto < len(self.snapshots):
            have = f"0..{len(self.snapshots) - 1}" if self.snapshots else "none yet"
            raise IndexError(f"no snapshot {upto}: ingested snapshots are {have}")

    def train_facts(self, upto: int) -> torch.Tensor:
        """The train facts of snapshots ``0..upto`` still known after ``upto`` (retracted ones left out) as
        ``LongTensor[n, 3]`` (cached; do not modify it)."""
        self._check_upto(upto)
        cached = self._train_cache.get(upto)
        if cached is None:
            parts = [retained(self.snapshots, index=j, upto=upto, split="train") for j in range(upto + 1)]
            cached = torch.cat(parts)
            self._train_cache[upto] = cached
        return cached

    def known_facts(self, upto: int) -> torch.Tensor:
        """All facts (train, valid, test) of snapshots ``0..upto`` as ``LongTensor[n, 3]`` (cached; do not
        modify it), without the facts retracted up to ``upto``. This is the filter set of filtered evaluation at
        snapshot ``upto``."""
        self._check_upto(upto)
        cached = self._known_cache.get(upto)
        if cached is None:
            cached = torch.cat([retained(self.snapshots, index=j, upto=upto) for j in range(upto + 1)])
            self._known_cache[upto] = cached
        return cached

    def retracted_facts(self, upto: int) -> torch.Tensor:
        """The facts retracted by snapshots ``0..upto`` and not added again since (``LongTensor[n, 3]``)."""
        self._check_upto(upto)
        return retracted_facts(self.snapshots, upto=upto)

    def retired_entities(self, upto: int) -> torch.Tensor:
        """Entity ids of snapshot ``upto`` without any known fact left (all of their facts were retracted): they
        keep their ids (append-only) but are not linked, predicted or offered as similar (``LongTensor``)."""
        counts = torch.bincount(
            self.known_facts(upto)[:, [0, 2]].reshape(-1), minlength=self.snapshots[upto].num_entities
        )
        return (counts == 0).nonzero().flatten()

    # ----------------------------------------------------------------------------------- vocabularies

    def save_vocabularies(self, directory: str | os.PathLike[str]) -> None:
        """Save ``entities.tsv`` and ``relations.tsv`` into ``directory`` (created if needed), each written
        atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.entities.save(directory / ENTITY_VOCAB_FILE)
        self.relations.save(directory / RELATION_VOCAB_FILE)

    @staticmethod
    def load_vocabularies(directory: str | os.PathLike[str]) -> tuple[Vocabulary, Vocabulary]:
        """Load ``(entities, relations)`` saved by :meth:`save_vocabularies`, to resume with
        ``GrowingKG.load(..., entities=..., relations=...)``."""
        directory = Path(directory)
        return (
            Vocabulary.load(directory / ENTITY_VOCAB_FILE, kind="entity"),
            Vocabulary.load(directory / RELATION_VOCAB_FILE, kind="relation"),
        )


# ------------------------------------------------------------------------------------------- shared loads

_SHARED_LOADS: OrderedDict[tuple[object, ...], GrowingKG] = OrderedDict()
_SHARED_LOCK = threading.Lock()
_SHARED_MAX = 4


def _files_signature(root: Path, upto: int | None, format: str = "auto") -> tuple[object, ...]:
    """What a load of ``root`` up to ``upto`` reads: every split and name file's path, inode, size and times."""
    from evergraph.kg.engine.sources import SOURCE_FILE, open_source

    source = open_source(root, format=format)
    files = [*source.files(upto=upto), root / SOURCE_FILE]
    count = source.count()
    upto = count - 1 if upto is None else upto  # "all" and "up to the last" are the same load
    signature: list[object] = [str(root.resolve()), upto, format]
    for file in files:
        try:
            stat = file.stat()
            signature.append((str(file), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns))
        except FileNotFoundError:
            signature.append((str(file), None))
    return tuple(signature)


def load_shared(dataset_dir: str | os.PathLike[str], *, upto: int | None = None, format: str = "auto") -> GrowingKG:
    """:meth:`GrowingKG.load` of ``dataset_dir`` up to ``upto`` (all if ``None``), shared by the readers of one
    process: the pipeline's train, evaluate and bundle steps read the same snapshots, so they are ingested once.

    The shared instance is reused only while every file it read keeps its inode, size and modification and change
    times (a changed file means a fresh load; content hashes are still checked where history matters); the last
    4 loads are kept. A load of fewer snapshots is a view (:meth:`GrowingKG.prefix`) of a kept load of the whole
    source whose files are all unchanged, so a run that loaded its source once reads nothing again for each step.
    Treat the result as read-only: never ingest into it.
    """
    root = Path(dataset_dir)
    key = _files_signature(root, upto, format)
    upto = cast(int, key[1])
    with _SHARED_LOCK:  # one load at a time: a second reader of the same data waits for the first
        kg = _SHARED_LOADS.get(key)
        if kg is None:
            whole_key = _files_signature(root, None, format)
            whole = _SHARED_LOADS.get(whole_key)
            if whole is not None:  # every file unchanged since the whole source was loaded: a view of it
                _SHARED_LOADS.move_to_end(whole_key)  # kept while its views come and go
                kg = whole.prefix(upto)
                logger.debug("snapshots of %s up to %s taken from its whole load", root, upto)
            else:
                kg = GrowingKG.load(root, upto=upto, format=format)
            _SHARED_LOADS[key] = kg
            while len(_SHARED_LOADS) > _SHARED_MAX:
                _SHARED_LOADS.popitem(last=False)
        else:
            _SHARED_LOADS.move_to_end(key)
            logger.debug("reusing the loaded snapshots of %s up to %s", root, upto)
        return kg
