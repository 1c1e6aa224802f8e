"""Build a retraction stream from an lkge dataset: the same snapshots, where snapshots 2.. also retract facts.

Snapshot ``k >= first`` gets a ``removed.txt`` with (a) ``share`` of the train facts of snapshots ``0..k-1`` still
known, at random, and (b) on the first retracting snapshot, every fact of ``entities`` chosen entities ("forget this
entity"; their facts in later snapshots are dropped from those snapshots too, so they stay forgotten). Facts a
snapshot retracts are also removed from its own later files so nothing is added and removed at once.
"""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path

from evergraph.kg.engine.ingest import ENTITY_NAMES_FILE, RELATION_NAMES_FILE, SPLITS, list_snapshot_dirs, read_split

logger = logging.getLogger(__name__)

Triple = tuple[str, str, str]


def _write(path: Path, triples: list[Triple]) -> None:
    path.write_text("".join(f"{h}\t{r}\t{t}\n" for h, r, t in triples), encoding="utf-8")


def build_retraction_stream(
    *,
    source: Path,
    out: Path,
    snapshots: int | None = None,
    first: int = 2,
    last: int = 4,
    share: float = 0.05,
    entities: int = 50,
    seed: int = 0,
) -> dict[str, object]:
    """Write the stream to ``out`` (replaced); returns what was retracted where."""
    rng = random.Random(seed)
    dirs = list_snapshot_dirs(source)[: snapshots or None]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in (ENTITY_NAMES_FILE, RELATION_NAMES_FILE):
        if (source / name).is_file():
            shutil.copy(source / name, out / name)
    data = [{name: read_split(d / f"{name}.txt")[0] for name in SPLITS} for d in dirs]
    known_train: list[Triple] = []
    known_all: set[Triple] = set()
    forgotten: set[str] = set()
    summary: dict[str, object] = {"snapshots": len(dirs), "retracted": {}, "forgotten_entities": []}
    for k, splits in enumerate(data):
        removed: list[Triple] = []
        if first <= k <= last:
            pool = [f for f in known_train if f in known_all]
            removed = rng.sample(pool, int(share * len(pool)))
            if k == first and entities:
                counts: dict[str, int] = {}
                for h, _, t in known_train:
                    counts[h] = counts.get(h, 0) + 1
                    counts[t] = counts.get(t, 0) + 1
                chosen = rng.sample(sorted(e for e, c in counts.items() if 3 <= c <= 30), entities)
                forgotten.update(chosen)
                summary["forgotten_entities"] = chosen
                extra = [f for f in known_all if f[0] in forgotten or f[2] in forgotten]
                removed = list(dict.fromkeys(removed + sorted(extra)))
        gone = set(removed)
        keep = {
            name: [f for f in splits[name] if f not in gone and f[0] not in forgotten and f[2] not in forgotten]
            for name in SPLITS
        }
        folder = out / str(k)
        folder.mkdir()
        for name in SPLITS:
            _write(folder / f"{name}.txt", keep[name])
        if removed:
            _write(folder / "removed.txt", removed)
            summary["retracted"][k] = len(removed)  # type: ignore[index]
        known_all -= gone
        known_all.update(f for name in SPLITS for f in keep[name])
        known_train = [f for f in known_train if f not in gone] + keep["train"]
    logger.info("retraction stream %s: %s", out, {k: v for k, v in summary.items() if k != "forgotten_entities"})
    return summary
