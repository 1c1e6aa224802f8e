"""The LKGE benchmark layout: ``DIR/<n>/{train,valid,test}.txt`` holding only the facts new in snapshot ``n``,
already split, with an optional ``DIR/<n>/removed.txt`` of earlier facts it retracts, and optional
``DIR/entity_names.tsv`` / ``DIR/relation_names.tsv``. Reading and validation live in
:mod:`evergraph.kg.engine.ingest`; this module is the source face of that layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evergraph.kg.engine.ingest import (
    ENTITY_NAMES_FILE,
    RELATION_NAMES_FILE,
    REMOVED_FILE,
    SPLITS,
    list_snapshot_dirs,
    read_names,
)
from evergraph.kg.errors import Problem, SnapshotError

__all__ = ["LkgeSource"]


def check_upto(root: Path, upto: int | None, count: int) -> int:
    """``upto`` (the last snapshot, when ``None``) after checking it exists."""
    if upto is None:
        return count - 1
    if not 0 <= upto < count:
        raise SnapshotError(
            [Problem(str(root), 0, f"asked for snapshots up to {upto}; the dataset has 0..{count - 1}")],
            hint="choose an existing snapshot",
        )
    return upto


@dataclass
class LkgeSource:
    """Numbered snapshot folders (see the module docstring)."""

    root: Path
    kind: str = "lkge"

    def snapshots(self, *, upto: int | None = None) -> list[Path]:
        """The snapshot folders ``0..upto`` (all by default), each ingested by ``GrowingKG.ingest``."""
        dirs = list_snapshot_dirs(self.root)
        return dirs[: check_upto(self.root, upto, len(dirs)) + 1]

    def count(self) -> int:
        """How many snapshots the source holds."""
        return len(list_snapshot_dirs(self.root))

    def names(self) -> tuple[dict[str, str], dict[str, str]]:
        """``(entity names, relation names)`` from the optional name files."""
        entity = self.root / ENTITY_NAMES_FILE
        relation = self.root / RELATION_NAMES_FILE
        return (read_names(entity) if entity.exists() else {}, read_names(relation) if relation.exists() else {})

    def files(self, *, upto: int | None = None) -> list[Path]:
        """Every file a load up to ``upto`` reads (present or not), to tell when a cached load is stale."""
        dirs = self.snapshots(upto=upto)
        found = [d / f"{name}.txt" for d in dirs for name in SPLITS] + [d / REMOVED_FILE for d in dirs]
        return found + [self.root / ENTITY_NAMES_FILE, self.root / RELATION_NAMES_FILE]
