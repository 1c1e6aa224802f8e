"""``manifest.json``: what a model directory holds and the sha256 of every file, written and verified here.

Pure (no MLflow): serving can verify a bundle with :func:`verify_manifest` without a tracking server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evergraph.kg.errors import ManifestError
from evergraph.kg.engine.atomic import sha256_file, write_json

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


def _files(directory: Path) -> list[str]:
    return sorted(
        p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST
    )


def write_manifest(*, directory: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Write ``directory/manifest.json``: ``info`` plus ``format`` and ``files`` (relative path -> sha256 of
    every other file under ``directory``). Returns the manifest."""
    manifest = {
        "format": MANIFEST_FORMAT,
        **info,
        "files": {name: sha256_file(directory / name) for name in _files(directory)},
    }
    write_json(directory / MANIFEST, manifest)
    return manifest


def verify_manifest(directory: Path) -> dict[str, Any]:
    """Check every file of ``directory`` against its ``manifest.json``; returns the manifest.

    Raises :class:`ManifestError` naming each missing, changed or unlisted file.
    """
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path} is missing; download the model version again (or re-log its run)") from None
    except ValueError as error:
        raise ManifestError(f"{path} is not valid JSON ({error}); download the model version again") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"{path} is not an Evergraph manifest (format {MANIFEST_FORMAT}); re-log the run")
    problems = []
    for name, expected in sorted(files.items()):
        file = directory / name
        if not file.is_file():
            problems.append(f"{name} is missing")
        elif (found := sha256_file(file)) != expected:
            problems.append(f"{name} has sha256 {found[:12]}..., the manifest says {expected[:12]}...")
    problems += [f"{name} is not in the manifest" for name in _files(directory) if name not in files]
    if problems:
        raise ManifestError(
            f"{directory} does not match its manifest ({'; '.join(problems)}); the files were changed or the "
            "transfer was cut short: download the version again, and re-log its run if the stored artifacts are bad"
        )
    return manifest
