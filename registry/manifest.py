"""``model/manifest.json`` of a logged snapshot run: the model files and their SHA-256, in the one manifest format
of :mod:`evergraph.kg.store.manifest` (``format`` 1 here), written and verified through it.

Pure (no MLflow): a downloaded model directory can be checked with :func:`verify_manifest` without a server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evergraph.kg.errors import ManifestError
from evergraph.kg.store import manifest as store_manifest
from evergraph.kg.store.manifest import MANIFEST

__all__ = ["MANIFEST", "MANIFEST_FORMAT", "verify_manifest", "write_manifest"]

MANIFEST_FORMAT = 1


def write_manifest(*, directory: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Write ``directory/manifest.json``: ``format``, ``info`` and ``files`` (relative path -> SHA-256 of every
    other file under ``directory``). Returns the manifest."""
    return store_manifest.write_manifest(directory / MANIFEST, info={"format": MANIFEST_FORMAT, **info})


def verify_manifest(directory: Path) -> dict[str, Any]:
    """Check every file of ``directory`` against its ``manifest.json`` (none missing, changed or unlisted);
    returns the manifest. Raises :class:`ManifestError` naming each problem."""
    fix = "download the model version again, and re-log its run if the stored artifacts are bad"
    manifest = store_manifest.read_manifest(
        directory / MANIFEST, error=ManifestError, fix=fix, formats=(MANIFEST_FORMAT,)
    )
    store_manifest.verify_files(directory, manifest["files"], error=ManifestError, fix=fix, exact=True)
    return manifest
