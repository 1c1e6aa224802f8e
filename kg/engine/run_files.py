"""The layout of a run directory and reading what a finished snapshot left in it.

One place for the file layout of ``OUT`` (see :mod:`evergraph.kg.engine.lifelong`)::

    OUT/config.json                 the RunConfig (a different config for the same OUT is refused)
    OUT/vocab/entities.tsv          append-only vocabularies (``id<TAB>label``), as of the last finished snapshot
    OUT/vocab/relations.tsv
    OUT/checkpoints/snapshot-N.pt   model + strategy state after snapshot N (``weights_only`` loadable)
    OUT/checkpoints/in-progress.pt  periodic checkpoint inside the snapshot being trained
    OUT/metrics.json                one entry per finished snapshot
    OUT/ranks/<r>/...               the same layout, kept by process r > 0 of a torchrun job (rank 0 writes OUT)

Light on purpose: reading a finished run (bundles, the registry, the gate) imports this and the model, never
the training stack.
"""

from __future__ import annotations

import json
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from evergraph.kg.engine.model import KGEModel
from evergraph.kg.errors import CheckpointError

IN_PROGRESS = "in-progress.pt"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class RunPaths:
    """Where a run directory keeps each file (``out`` may be given as a string)."""

    out: Path

    def __post_init__(self) -> None:
        self.out = Path(self.out)

    @property
    def config(self) -> Path:
        return self.out / "config.json"

    @property
    def metrics(self) -> Path:
        return self.out / "metrics.json"

    @property
    def vocab(self) -> Path:
        return self.out / "vocab"

    @property
    def checkpoints(self) -> Path:
        return self.out / "checkpoints"

    def snapshot_checkpoint(self, index: int) -> Path:
        return self.checkpoints / f"snapshot-{index}.pt"

    def rank_dir(self, rank: int) -> Path:
        """The run directory process ``rank`` (> 0) of a ``torchrun`` job keeps
        (:mod:`evergraph.kg.engine.distributed`)."""
        return self.out / "ranks" / str(rank)

    @property
    def in_progress(self) -> Path:
        return self.checkpoints / IN_PROGRESS


def find_entry(metrics: dict[str, Any], snapshot: int) -> dict[str, Any] | None:
    """The ``metrics.json`` entry of ``snapshot`` (a copy), or ``None`` when that snapshot is not finished."""
    for entry in metrics.get("snapshots", []):
        if int(entry["snapshot"]) == snapshot:
            return dict(entry)
    return None


def read_entry(paths: RunPaths, snapshot: int) -> dict[str, Any]:
    """The ``metrics.json`` entry of ``snapshot`` in a run directory; :class:`CheckpointError` naming the finished
    snapshots when it is not there."""
    metrics = json.loads(paths.metrics.read_text()) if paths.metrics.exists() else {}
    entry = find_entry(metrics, snapshot)
    if entry is None:
        done = [int(e["snapshot"]) for e in metrics.get("snapshots", [])]
        raise CheckpointError(
            f"snapshot {snapshot} is not finished in {paths.out} (finished: {done or 'none'}); train it first"
        )
    return entry


def load_model_checkpoint(path: Path, *, device: torch.device | str = "cpu") -> tuple[KGEModel, dict[str, Any]]:
    """Load a snapshot checkpoint (``weights_only=True``); returns the model and the whole checkpoint dict."""
    state = torch.load(path, map_location=device, weights_only=True)
    model = KGEModel(
        interaction=state["model_name"],
        num_entities=state["model"]["entity"].shape[0],
        num_relations=state["model"]["relation"].shape[0] // 2,
        dim=state["dim"],
    ).to(device)
    model.load_state_dict(state["model"])
    return model, state
