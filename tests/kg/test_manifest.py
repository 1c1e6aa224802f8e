"""The one integrity-manifest format: {files: {name: sha256}} written and verified in kg/store/manifest.py, used by
bundles, the FAISS index sidecar and the MLflow model files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evergraph.kg.errors import BundleError, ManifestError
from evergraph.kg.store.manifest import MANIFEST, read_manifest, verify_files, write_manifest
from evergraph.registry.manifest import verify_manifest
from evergraph.registry.manifest import write_manifest as write_model_manifest


def _directory(tmp_path: Path) -> Path:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "sub" / "b.txt").write_text("b")
    return tmp_path


def test_round_trip_lists_every_file_but_the_manifest(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    written = write_manifest(directory / MANIFEST, info={"format": 7, "version": "3"})
    assert sorted(written["files"]) == ["a.txt", "sub/b.txt"]
    read = read_manifest(directory / MANIFEST, error=BundleError, fix="redo", formats=(7,))
    assert read == written
    verify_files(directory, read["files"], error=BundleError, fix="redo", exact=True)


def test_every_problem_is_named_with_the_fix(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    files = write_manifest(directory / MANIFEST, info={})["files"]
    (directory / "a.txt").write_text("changed")
    (directory / "sub" / "b.txt").unlink()
    (directory / "new.txt").write_text("x")
    with pytest.raises(BundleError) as caught:
        verify_files(directory, files, error=BundleError, fix="write it again", exact=True)
    message = str(caught.value)
    assert "a.txt does not match the SHA-256 in manifest.json" in message
    assert "b.txt is missing" in message and "new.txt is not in the manifest" in message
    assert message.endswith("; write it again")
    verify_files(directory, {"a.txt": files["a.txt"]}, error=BundleError, fix="x", hashes=False)  # existence only


def test_paths_outside_the_directory_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not a path inside"):
        verify_files(tmp_path, {"../escape": "0" * 64}, error=BundleError, fix="x")


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "is missing"), ("{", "not valid JSON"), ("[]", "not a manifest"),
     ('{"format": 1, "files": {}}', "format 1"), ('{"format": 2}', "lists no files")],
)  # fmt: skip
def test_bad_manifests_raise_the_readers_error(tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / MANIFEST).write_text(content)
    with pytest.raises(ManifestError, match=message):
        read_manifest(tmp_path / MANIFEST, error=ManifestError, fix="x", formats=(2,))


def test_model_files_use_the_same_format(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    manifest = write_model_manifest(directory=directory, info={"lineage": "ex"})
    assert (manifest["format"], manifest["lineage"], sorted(manifest["files"])) == (1, "ex", ["a.txt", "sub/b.txt"])
    assert verify_manifest(directory) == json.loads((directory / MANIFEST).read_text())
    (directory / "extra.bin").write_bytes(b"1")
    with pytest.raises(ManifestError, match="extra.bin is not in the manifest"):
        verify_manifest(directory)
