"""A folder of full exports of a graph, one file per version, ordered by file name.

``DIR/2026-01-01.nt``, ``DIR/2026-02-01.nt``, ... (N-Triples ``.nt``, Turtle ``.ttl``, or labelled triples ``.tsv`` /
``.csv``; formats may change from one export to the next). Every other file (a README, ``source.json``, hidden or
temporary files such as ``.2026-03-01.nt.part``) is ignored, so an export copied in under a hidden name and renamed
when complete is never half read.

Each export becomes one snapshot of the stream the engine learns: the first holds all of its facts, every later one
the facts added since the previous export, and the facts that export no longer holds as *removed* (retracted). New
facts are split into train/valid/test by a stable hash (:mod:`evergraph.kg.engine.sources.splits`). Readable names
come from ``rdfs:label`` / ``schema:name`` (the latest export that names an id wins); other literals are counted
attributes. All exports are validated before anything is returned: every problem of every file, with its line
(and byte offset for RDF), in one :class:`~evergraph.kg.errors.SnapshotError`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from evergraph.kg.engine.ingest import ENTITY_NAMES_FILE, RELATION_NAMES_FILE, SPLITS, RawSnapshot
from evergraph.kg.engine.sources.lkge import check_upto
from evergraph.kg.engine.sources.rdf import read_rdf
from evergraph.kg.engine.sources.splits import SplitConfig, split_of
from evergraph.kg.engine.sources.table import read_table
from evergraph.kg.errors import Problem, SnapshotError

logger = logging.getLogger(__name__)

__all__ = ["DUMP_SUFFIXES", "DumpsSource", "dump_files"]

DUMP_SUFFIXES = {".nt": "ntriples", ".ttl": "turtle", ".tsv": "tsv", ".csv": "csv"}
"""File name endings of exports and the reader each gets."""

Triple = tuple[str, str, str]


def dump_files(root: Path) -> list[Path]:
    """The export files of ``root`` in file-name order (hidden files, other endings and the name files
    ``entity_names.tsv``/``relation_names.tsv`` ignored)."""
    return sorted(
        (
            p
            for p in root.iterdir()
            if p.is_file()
            and not p.name.startswith(".")
            and p.suffix.lower() in DUMP_SUFFIXES
            and p.name not in (ENTITY_NAMES_FILE, RELATION_NAMES_FILE)
        ),
        key=lambda p: p.name,
    )


@dataclass
class _Export:
    facts: list[Triple]
    names: dict[str, str]
    counts: dict[str, int]
    content_hash: str


@dataclass
class DumpsSource:
    """A folder of full exports (see the module docstring); ``splits`` sets the held-out shares."""

    root: Path
    splits: SplitConfig = field(default_factory=SplitConfig)
    kind: str = "dumps"
    _names: tuple[dict[str, str], dict[str, str]] = field(default_factory=lambda: ({}, {}))

    def files(self, *, upto: int | None = None) -> list[Path]:
        files = dump_files(self.root)
        if not files:
            raise SnapshotError([Problem(str(self.root), 0, "no export files (.nt, .ttl, .tsv, .csv) found")])
        return files[: check_upto(self.root, upto, len(files)) + 1]

    def count(self) -> int:
        """How many exports (snapshots) the folder holds."""
        return len(self.files())

    def _read(self, path: Path) -> tuple[_Export | None, list[Problem]]:
        kind = DUMP_SUFFIXES[path.suffix.lower()]
        if kind in ("ntriples", "turtle"):
            rdf = read_rdf(path, turtle=kind == "turtle")
            facts, names, problems = rdf.facts, rdf.names, rdf.problems
            counts = {"attributes": rdf.attributes, "names": len(rdf.names), "duplicates": rdf.duplicates}
            bom = rdf.bom_stripped
        else:
            table = read_table(path, delimiter="\t" if kind == "tsv" else ",")
            facts, names, problems = table.facts, {}, table.problems
            counts = {"duplicates": table.duplicates}
            bom = table.bom_stripped
        if bom:
            counts["bom_stripped"] = 1
        if not problems and not facts:
            problems = [
                Problem(str(path), 0, "the export holds no fact; an empty export would retract every fact (remove it)")
            ]
        if not problems:
            problems = _label_problems(path, facts)
        if problems:
            return None, problems
        digest = hashlib.sha256(self.splits.model_dump_json().encode() + b"\0")
        digest.update(path.read_bytes())
        counts["facts"] = len(facts)
        return _Export(facts=facts, names=names, counts=counts, content_hash=digest.hexdigest()), []

    def snapshots(self, *, upto: int | None = None) -> list[RawSnapshot]:
        """One snapshot per export ``0..upto`` (all by default): the diff against the export before it."""
        files = self.files(upto=upto)
        exports: list[_Export] = []
        problems: list[Problem] = []
        for path in files:
            export, found = self._read(path)
            problems.extend(found)
            if export is not None:
                exports.append(export)
        if problems:
            raise SnapshotError(problems, hint="fix the export(s) and run again")
        snapshots = []
        previous: list[Triple] = []
        previous_set: set[Triple] = set()
        entity_names: dict[str, str] = {}
        relation_names: dict[str, str] = {}
        for path, export in zip(files, exports, strict=True):
            current = set(export.facts)
            added = [f for f in export.facts if f not in previous_set]
            removed = [f for f in previous if f not in current]
            parts: dict[str, list[Triple]] = {name: [] for name in SPLITS}
            for fact in added:
                parts[split_of(*fact, self.splits)].append(fact)
            relations = {r for _, r, _ in export.facts}
            for key, name in export.names.items():
                (relation_names if key in relations else entity_names)[key] = name
            counts = {**export.counts, "added": len(added), "removed": len(removed)}
            snapshots.append(
                RawSnapshot(
                    path=path,
                    train=parts["train"],
                    valid=parts["valid"],
                    test=parts["test"],
                    duplicates_dropped={name: 0 for name in SPLITS},
                    content_hash=export.content_hash,
                    removed=removed,
                    removed_at=None,
                    counts=counts,
                )
            )
            logger.info("%s: %s", path.name, counts)
            previous, previous_set = export.facts, current
        self._names = (entity_names, relation_names)
        return snapshots

    def names(self) -> tuple[dict[str, str], dict[str, str]]:
        """``(entity names, relation names)`` of the exports read by the last :meth:`snapshots`."""
        return self._names


def _label_problems(path: Path, facts: list[Triple]) -> list[Problem]:
    """Ids the vocabulary files cannot hold (a tab or newline inside an IRI cannot happen; a literal id can't)."""
    problems = []
    for number, fact in enumerate(facts, start=1):
        for label in fact:
            if "\t" in label or "\n" in label or "\r" in label:
                problems.append(Problem(str(path), 0, f"fact {number}: id {label!r} holds a tab or a newline"))
    return problems
