"""PNG plots of a run's ``metrics.json`` (matplotlib, Agg canvas, no pyplot state, no MLflow)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from evergraph.kg.errors import RegistryError


def _entries(metrics: Mapping[str, Any], upto: int | None) -> list[Mapping[str, Any]]:
    entries = sorted(metrics.get("snapshots", []), key=lambda e: int(e["snapshot"]))
    if upto is not None:
        entries = [e for e in entries if int(e["snapshot"]) <= upto]
    if not entries:
        raise RegistryError(f"metrics.json has no finished snapshot up to {upto}; train one before plotting")
    return entries


def _title(metrics: Mapping[str, Any]) -> str:
    parts = [str(metrics[k]) for k in ("strategy", "model", "protocol") if metrics.get(k)]
    return " / ".join(parts)


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png", dpi=100)
    return path


def forgetting_matrix_png(*, metrics: Mapping[str, Any], path: Path, upto: int | None = None) -> Path:
    """Heatmap of filtered MRR: row ``i`` = after learning snapshot ``i``, column ``j`` = test set ``j``
    (blank above the diagonal), each cell annotated. Uses entries up to snapshot ``upto`` (default: all).
    Returns ``path``."""
    entries = _entries(metrics, upto)
    rows = [int(e["snapshot"]) for e in entries]
    columns = sorted({int(r["snapshot"]) for e in entries for r in e.get("per_test_set", [])})
    matrix = np.full((len(rows), len(columns)), math.nan)
    for i, entry in enumerate(entries):
        for result in entry.get("per_test_set", []):
            matrix[i, columns.index(int(result["snapshot"]))] = float(result["mrr"])
    size = max(3.0, 0.9 * len(columns) + 2.0), max(2.5, 0.6 * len(rows) + 1.5)
    figure = Figure(figsize=size)
    axes = figure.add_subplot()
    image = axes.imshow(np.ma.masked_invalid(matrix), cmap="viridis", vmin=0.0, vmax=max(np.nanmax(matrix), 1e-6))
    for i in range(len(rows)):
        for j in range(len(columns)):
            if not math.isnan(matrix[i, j]):
                light = matrix[i, j] < 0.6 * np.nanmax(matrix)
                axes.text(
                    j,
                    i,
                    f"{matrix[i, j]:.3f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if light else "black",
                )
    axes.set_xticks(range(len(columns)), [str(c) for c in columns])
    axes.set_yticks(range(len(rows)), [str(r) for r in rows])
    axes.set_xlabel("test set of snapshot j")
    axes.set_ylabel("after learning snapshot i")
    axes.set_title(f"Filtered MRR (forgetting) {_title(metrics)}".strip(), fontsize=9)
    figure.colorbar(image, ax=axes, label="MRR")
    figure.tight_layout()
    return _save(figure, Path(path))


def stream_mrr_png(*, metrics: Mapping[str, Any], path: Path, upto: int | None = None) -> Path:
    """Line plot of the stream MRR (test-size-weighted over test sets 0..i) after each snapshot ``i``, for
    entries up to snapshot ``upto`` (default: all). Returns ``path``."""
    entries = _entries(metrics, upto)
    xs = [int(e["snapshot"]) for e in entries]
    ys = [float(e["stream"]["mrr"]) for e in entries]
    figure = Figure(figsize=(max(3.5, 0.6 * len(xs) + 2.5), 3.0))
    axes = figure.add_subplot()
    axes.plot(xs, ys, marker="o")
    for x, y in zip(xs, ys, strict=True):
        axes.annotate(f"{y:.3f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    axes.set_xticks(xs, [str(x) for x in xs])
    axes.set_ylim(0.0, max(max(ys) * 1.2, 0.05))
    axes.set_xlabel("after learning snapshot")
    axes.set_ylabel("stream MRR")
    axes.set_title(f"Stream MRR {_title(metrics)}".strip(), fontsize=9)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return _save(figure, Path(path))
