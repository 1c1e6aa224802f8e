"""Atomic file writes: write a temporary file beside the target, then ``os.replace`` it into place.

A reader (or a restarted run) sees either the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _replace(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Write ``text`` as UTF-8 with ``\n`` line ends, atomically."""
    _replace(path, lambda h: h.write(text.encode("utf-8")))


def write_json(path: Path, data: Any, *, indent: int | None = 2) -> None:
    """Write ``data`` as JSON indented by ``indent`` (default 2; ``None``: one line per document, written by
    json's C encoder, 5-10x faster for large reports), atomically."""
    _replace(path, lambda h: h.write((json.dumps(data, indent=indent) + "\n").encode()))


def save_torch(path: Path, obj: Any) -> None:
    """``torch.save`` atomically."""
    _replace(path, lambda h: torch.save(obj, h))


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (how manifests and index sidecars name their files)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
