"""Where snapshots come from: one module per kind of source, chosen by what the path holds or by name.

- ``lkge`` (:mod:`.lkge`): numbered folders of new facts, already split, with optional ``removed.txt``.
- ``dumps`` (:mod:`.dumps`): a folder of full exports (N-Triples, Turtle, TSV, CSV), diffed into snapshots.

An optional ``DIR/source.json`` names the kind and the split shares of a dumps folder, e.g.
``{"format": "dumps", "splits": {"valid": 0.05, "test": 0.05}}``; a ``format`` passed in wins. ``--format`` of
``evergraph run`` / ``train`` goes through :func:`pin_format`: checked before any work, and recorded in
``source.json`` when the folder would otherwise be read another way, so that every reader of the folder (the
pipeline's steps, later runs, the scheduled deployment) reads it the same way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evergraph.kg.engine.sources.dumps import DUMP_SUFFIXES, DumpsSource, dump_files
from evergraph.kg.engine.sources.lkge import LkgeSource
from evergraph.kg.engine.sources.splits import SplitConfig, split_of
from evergraph.kg.errors import Problem, SnapshotError

__all__ = [
    "FORMATS",
    "SOURCE_FILE",
    "DumpsSource",
    "LkgeSource",
    "SourceConfig",
    "SplitConfig",
    "detect_format",
    "open_source",
    "pin_format",
    "split_of",
]

FORMATS = ("auto", "lkge", "dumps")
SOURCE_FILE = "source.json"

Source = LkgeSource | DumpsSource


class SourceConfig(BaseModel):
    """The optional ``source.json`` of a data folder."""

    model_config = ConfigDict(extra="forbid")

    format: str = Field("auto", description="auto | lkge | dumps")
    splits: SplitConfig = Field(default_factory=SplitConfig, description="held-out shares of new dump facts")


def _read_config(root: Path) -> SourceConfig:
    file = root / SOURCE_FILE
    if not file.is_file():
        return SourceConfig()
    try:
        return SourceConfig.model_validate(json.loads(file.read_text(encoding="utf-8")))
    except (ValueError, ValidationError) as error:
        reason = " ".join(str(error).split())
        raise SnapshotError([Problem(str(file), 0, f"not a valid source configuration: {reason}")]) from None


def detect_format(path: str | Path) -> str:
    """``"lkge"`` when ``path`` holds numbered snapshot folders, else ``"dumps"`` when it holds export files."""
    root = Path(path)
    if not root.is_dir():
        raise SnapshotError([Problem(str(root), 0, "dataset directory not found")])
    numbered = any(p.is_dir() and p.name.isdigit() for p in root.iterdir())
    if numbered:  # the name files of an lkge folder (entity_names.tsv) are no exports
        return "lkge"
    if dump_files(root):
        return "dumps"
    endings = ", ".join(DUMP_SUFFIXES)
    raise SnapshotError(
        [Problem(str(root), 0, f"no snapshot folders 0, 1, 2, ... and no export files ({endings}) found")],
        hint="add the first snapshot or export",
    )


def open_source(path: str | Path, *, format: str = "auto") -> Source:
    """The source at ``path``: ``format`` ``auto`` (default) follows ``source.json`` or what the folder holds."""
    root = Path(path)
    if format not in FORMATS:
        raise SnapshotError([Problem(str(root), 0, f"unknown source format {format!r}; use {', '.join(FORMATS)}")])
    config = _read_config(root) if root.is_dir() else SourceConfig()
    kind = format if format != "auto" else config.format
    if kind not in FORMATS:
        raise SnapshotError([Problem(str(root / SOURCE_FILE), 0, f"unknown format {kind!r}; use lkge or dumps")])
    if kind == "auto":
        kind = detect_format(root)
    if kind == "dumps":
        return DumpsSource(root, splits=config.splits)
    return LkgeSource(root)


def pin_format(path: str | Path, *, format: str) -> Path | None:
    """Make every reader of the folder ``path`` read it as ``format`` (``auto``, ``lkge`` or ``dumps``), checked
    before any work: a folder that cannot be read that way is refused. When the folder already reads as
    ``format`` (its ``source.json`` or what it holds) nothing is written; else ``format`` is recorded in its
    ``source.json`` (the split shares there are kept) and that file is returned."""
    root = Path(path)
    if format not in FORMATS:
        raise SnapshotError(
            [Problem(str(root), 0, f"unknown format {format!r}")], hint=f"use one of {', '.join(FORMATS)}"
        )
    if not root.is_dir():
        raise SnapshotError([Problem(str(root), 0, "dataset directory not found")])
    config = _read_config(root)
    if format == "auto":
        return None
    if format == "lkge" and not (root / "0").is_dir():
        raise SnapshotError(
            [Problem(str(root), 0, "--format lkge needs snapshot folders 0/, 1/, ... and there is no 0/")],
            hint="use --format dumps for a folder of exports, or auto",
        )
    if format == "dumps" and not dump_files(root):
        endings = ", ".join(DUMP_SUFFIXES)
        raise SnapshotError(
            [Problem(str(root), 0, f"--format dumps needs export files ({endings}) and there is none")],
            hint="use --format lkge for numbered snapshot folders, or auto",
        )
    current = config.format if config.format != "auto" else detect_format(root)
    if current == format:
        return None
    file = root / SOURCE_FILE
    recorded = config.model_copy(update={"format": format}).model_dump(exclude_defaults=True)
    partial = root / f".{SOURCE_FILE}.part"
    try:
        partial.write_text(json.dumps({"format": format, **recorded}, indent=1) + "\n", encoding="utf-8")
        os.replace(partial, file)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise SnapshotError(
            [Problem(str(file), 0, f"cannot record format {format!r} for the folder: {error.strerror or error}")],
            hint=f'write {{"format": "{format}"}} into {file} yourself, or copy the folder somewhere writable',
        ) from None
    return file
