"""Integrity manifests, in one format for everything Evergraph writes and later trusts: a JSON object whose
``files`` maps each file's path (relative to the manifest's directory, ``/``-separated) to its SHA-256, beside
whatever else its writer records (``format``, version, sizes, ...).

Three writers use it: serving bundles (``BUNDLE/manifest.json``, :mod:`evergraph.kg.store.bundle_writer`), the
FAISS index sidecar (``index.faiss.json``, :mod:`evergraph.kg.store.index`) and the model files logged to MLflow
(``model/manifest.json``, :mod:`evergraph.registry.tracking`). Each reader checks with :func:`verify_files`,
raising its own error class (the message names the file and says what to do).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from evergraph.kg.engine.atomic import sha256_file, write_json
from evergraph.kg.errors import EvergraphError

__all__ = ["MANIFEST", "hash_files", "listed_files", "read_manifest", "verify_files", "write_manifest"]

MANIFEST = "manifest.json"
"""The usual manifest file name (the index sidecar is named after its index instead)."""


def listed_files(directory: Path, *, exclude: Iterable[str] = (MANIFEST,)) -> list[str]:
    """Every file under ``directory`` (recursively, sorted, ``/``-separated relative paths) but ``exclude``."""
    skip = set(exclude)
    return sorted(
        name for name in (p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
        if name not in skip
    )  # fmt: skip


def hash_files(directory: Path, names: Iterable[str] | None = None) -> dict[str, str]:
    """``{name: sha256}`` of ``names`` (default: :func:`listed_files` of ``directory``)."""
    return {name: sha256_file(directory / name) for name in (listed_files(directory) if names is None else names)}


def write_manifest(path: Path, *, info: Mapping[str, Any], files: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Write ``path`` (atomically): ``info`` plus ``files`` (default: the hashes of every other file in
    ``path``'s directory). Returns the manifest."""
    manifest = {**info, "files": dict(files if files is not None else hash_files(path.parent))}
    write_json(path, manifest)
    return manifest


def read_manifest(path: Path, *, error: type[EvergraphError], fix: str, formats: Iterable[Any] = ()) -> dict[str, Any]:
    """The manifest at ``path``, checked to be a JSON object with a ``files`` mapping (and, when ``formats`` is
    given, a ``format`` among them); any problem is an ``error`` naming ``path`` and ending in ``fix``."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path} is missing; {fix}") from None
    except ValueError as problem:
        raise error(f"{path} is not valid JSON ({problem}); {fix}") from None
    if not isinstance(manifest, dict):
        raise error(f"{path} is not a manifest (a JSON object); {fix}")
    allowed = list(formats)
    if allowed and manifest.get("format") not in allowed:
        readable = " or ".join(str(f) for f in allowed)
        raise error(
            f"{path}: format {manifest.get('format')!r}, this Evergraph reads format {readable}; "
            f"{fix} with this version"
        )
    if not isinstance(manifest.get("files"), dict):
        raise error(f"{path} lists no files; {fix}")
    return manifest


def verify_files(
    directory: Path,
    files: Mapping[str, str],
    *,
    error: type[EvergraphError],
    fix: str,
    hashes: bool = True,
    exact: bool = False,
    exclude: Iterable[str] = (MANIFEST,),
    manifest_name: str = MANIFEST,
) -> None:
    """Check the files of ``directory`` against ``files`` (``{name: sha256}``): each exists (and, with
    ``hashes``, default True, has that SHA-256); with ``exact`` (default False) no other file is there (but
    ``exclude``). Every problem is listed in one ``error`` ending in ``fix``; ``manifest_name`` (default
    ``manifest.json``) names the manifest in messages."""
    problems = []
    for name, expected in sorted(files.items()):
        parts = PurePosixPath(name).parts
        if not parts or PurePosixPath(name).is_absolute() or ".." in parts:
            problems.append(f"{name!r} is not a path inside {directory}")
            continue
        file = directory / name
        if not file.is_file():
            problems.append(f"{file} is missing")
        elif hashes and (found := sha256_file(file)) != expected:
            problems.append(
                f"{file} does not match the SHA-256 in {manifest_name} ({found[:12]}... found, "
                f"{str(expected)[:12]}... listed: edited or damaged)"
            )
    if exact:
        extra = [name for name in listed_files(directory, exclude=exclude) if name not in files]
        problems += [f"{directory / name} is not in the manifest" for name in extra]
    if problems:
        raise error(f"{'; '.join(problems)}; {fix}")
