"""Writing serving bundles and switching the champion pointer (the layout is in :mod:`evergraph.kg.store.bundle`).

Writing reads a finished engine run (its checkpoint, vocabularies and data) and fits the confidence calibration;
reading a bundle (:class:`evergraph.kg.store.bundle.Bundle`) needs none of that, so serving imports only
:mod:`evergraph.kg.store.bundle`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from evergraph.kg.engine.atomic import save_torch, write_json, write_text
from evergraph.kg.engine.ingest import GrowingKG, load_shared, read_names
from evergraph.kg.engine.model import KGEModel
from evergraph.kg.engine.run_files import RunPaths, find_entry, load_model_checkpoint
from evergraph.kg.engine.snapshot import retained
from evergraph.kg.engine.vocab import Vocabulary
from evergraph.kg.errors import BundleError, SnapshotError
from evergraph.kg.store.bundle import (
    _WEIGHT_KEYS,
    BUNDLE_FORMAT,
    CALIBRATION,
    ENTITIES,
    ENTITY_NAMES,
    FACTS,
    INDEX,
    INDEX_SIDECAR,
    MANIFEST,
    METRICS,
    RELATION_NAMES,
    RELATIONS,
    RETIRED,
    RETRACTED,
    WEIGHTS,
    _read_json,
    _verify,
    read_pointer,
)
from evergraph.kg.store.calibration import Calibration, fit_calibration
from evergraph.kg.store.facts import FactTable
from evergraph.kg.store.manifest import hash_files, write_manifest
from evergraph.kg.store.quarantine import rejected_facts

if TYPE_CHECKING:
    from evergraph.kg.store.index import IndexConfig

logger = logging.getLogger(__name__)

__all__ = [
    "BundleExtra",
    "BundleParts",
    "build_snapshot_index",
    "index_path",
    "remove_stale_tmp",
    "switch_pointer",
    "write_bundle",
]


@dataclass(frozen=True)
class BundleParts:
    """What an ``extras`` callable of :func:`write_bundle` gets: the bundle directory being written (files it
    writes there are listed in the manifest and verified like the others), its version and snapshot, the model,
    the known facts and the validation facts (``[m, 3]``, the bundle's ids)."""

    directory: Path
    version: str
    snapshot: int
    model: KGEModel
    facts: FactTable
    valid: torch.Tensor


BundleExtra = Callable[[BundleParts], None]

_TMP_NAME = re.compile(r"^\.[^.]+\.(?P<pid>[0-9]+)\.[^.]+\.tmp$")
"""A bundle being written: ``.<dest name>.<writer pid>.<random>.tmp`` beside the bundle it becomes."""


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    with target.open("rb+") as handle:
        os.fsync(handle.fileno())


def _load_snapshot_model(run_dir: Path, snapshot: int) -> tuple[KGEModel, dict[str, Any]]:
    path = RunPaths(run_dir).snapshot_checkpoint(snapshot)
    if not path.is_file():
        raise BundleError(
            f"{run_dir} has no finished snapshot {snapshot} ({path} is missing); "
            f"train it first (`evergraph train --out {run_dir} --upto {snapshot}`) or pick a finished snapshot"
        )
    return load_model_checkpoint(path, device="cpu")


def index_path(run_dir: Path | str, snapshot: int) -> Path:
    """Where the FAISS index of ``snapshot`` of a run lives: ``run_dir/indexes/snapshot-N.faiss`` (+ ``.json``)."""
    return Path(run_dir) / "indexes" / f"snapshot-{snapshot}.faiss"


def build_snapshot_index(*, run_dir: Path | str, snapshot: int, config: IndexConfig | None = None) -> Path:
    """Index the entity table of a finished snapshot's checkpoint and save it to :func:`index_path`.

    ``config`` defaults to ``IndexConfig()`` (exact ``Flat``). Building again replaces the index (each of the
    index file and its sidecar is replaced atomically). Returns the index path.
    """
    from evergraph.kg.store.index import EntityIndex

    run_dir = Path(run_dir)
    model, _ = _load_snapshot_model(run_dir, snapshot)
    path = index_path(run_dir, snapshot)
    EntityIndex.build(model, config=config).save(path)
    logger.info("indexed snapshot %d of %s -> %s", snapshot, run_dir, path)
    return path


def _snapshot_index(run_dir: Path, snapshot: int, model: KGEModel) -> Path:
    """The snapshot's saved index, (re)built when missing or not matching ``model``."""
    from evergraph.kg.errors import EntityIndexError
    from evergraph.kg.store.index import EntityIndex

    path = index_path(run_dir, snapshot)
    if path.is_file():
        try:
            EntityIndex.load(path, model=model)
            return path
        except EntityIndexError as error:
            logger.warning("rebuilding the index of snapshot %d: %s", snapshot, error)
    return build_snapshot_index(run_dir=run_dir, snapshot=snapshot)


def _existing_bundle(dest: Path, *, version: str, snapshot: int, content_hash: str) -> bool:
    """Whether ``dest`` already is this bundle (then writing is a no-op); raises if it is something else."""
    if not dest.exists():
        return False
    try:
        manifest = _verify(dest)
    except BundleError as error:
        raise BundleError(
            f"{dest} exists but is not a valid bundle ({error}); remove it and write the bundle again"
        ) from None
    found = (manifest.get("version"), manifest.get("snapshot"), manifest.get("content_hash"))
    if found != (version, snapshot, content_hash):
        raise BundleError(
            f"{dest} already holds version {found[0]!r} (snapshot {found[1]}, content {found[2]}), not version "
            f"{version!r} (snapshot {snapshot}, content {content_hash}); write the bundle to another directory"
        )
    return True


def write_bundle(
    *,
    run_dir: Path | str,
    snapshot: int,
    dest: Path | str,
    version: str,
    extra: dict[str, Any] | None = None,
    names: Path | str | None = None,
    extras: Sequence[BundleExtra] = (),
) -> Path:
    """Write snapshot ``snapshot`` of the engine run ``run_dir`` as the serving bundle ``dest`` of ``version``.

    ``extra`` (default: ``{}``) is any JSON-serialisable metadata kept in the manifest (run id, source, ...).
    ``names`` (default: the run's data directory) is the directory whose ``entity_names.tsv`` and
    ``relation_names.tsv`` are copied into the bundle, when it has them. The known facts and their snapshots
    are read from the run's data directory (checked against the content hashes the run learned), and the
    confidence of inferred facts is calibrated on its validation facts (:mod:`evergraph.kg.store.calibration`).
    The index is copied from :func:`index_path` and built (``Flat``) first when missing. Everything is written
    to a temporary sibling directory which is then renamed to ``dest``: ``dest`` is complete or absent, and a
    failed write leaves nothing behind. If ``dest`` already holds this version of this snapshot (same content
    hash) and verifies, it is returned unchanged; any other content at ``dest`` is a :class:`BundleError`.
    ``extras`` (default none) each add files to the bundle before its manifest is written (:class:`BundleParts`;
    the pipeline passes :data:`evergraph.kg.knowledge.bundle_trust.TRUST_FILES`: mined rules and the
    plausibility filter). Returns ``dest``.
    """
    run_dir, dest, version = Path(run_dir), Path(dest), str(version)
    extra = dict(extra or {})
    try:
        json.dumps(extra)
    except (TypeError, ValueError) as error:
        raise BundleError(f"extra must be JSON-serialisable ({error}); pass plain str/int/float/list/dict") from None

    fix = f"is {run_dir} an engine run directory (kg.LifelongRun out)?"
    metrics = _read_json(run_dir / "metrics.json", what="the run's metrics", fix=fix)
    entry = find_entry(metrics, snapshot)
    if entry is None:
        finished = [e.get("snapshot") for e in metrics.get("snapshots", [])]
        raise BundleError(
            f"{run_dir} has not finished snapshot {snapshot} (finished: {finished}); train it first or pick one"
        )
    content_hash = str(entry["content_hash"])
    if _existing_bundle(dest, version=version, snapshot=snapshot, content_hash=content_hash):
        logger.info("bundle %s (version %s, snapshot %d) already written", dest, version, snapshot)
        return dest

    model, state = _load_snapshot_model(run_dir, snapshot)
    config = _read_json(run_dir / "config.json", what="the run's configuration", fix=fix)
    vocabularies = {
        name: Vocabulary.load(run_dir / "vocab" / name, kind=kind)
        for name, kind in ((ENTITIES, "entity"), (RELATIONS, "relation"))
    }
    sizes = {ENTITIES: model.num_entities, RELATIONS: model.num_relations}
    for name, vocab in vocabularies.items():
        if len(vocab) < sizes[name]:
            raise BundleError(
                f"{run_dir / 'vocab' / name} holds {len(vocab)} labels but snapshot {snapshot} has {sizes[name]}; "
                "the run directory is damaged: restore it or train a new run"
            )
    index = _snapshot_index(run_dir, snapshot, model)
    data = Path(config["data"]) if config.get("data") else None
    facts, calibration, kg, valid = _facts_and_calibration(
        run_dir=run_dir, data=data, snapshot=snapshot, metrics=metrics, model=model, vocabularies=vocabularies
    )

    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(dest.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{os.getpid()}.", suffix=".tmp", dir=dest.parent))
    try:
        weights = {key: model.state_dict()[key].detach().cpu().clone() for key in _WEIGHT_KEYS}
        save_torch(tmp / WEIGHTS, weights)
        for name, vocab in vocabularies.items():
            Vocabulary(vocab.labels[: sizes[name]], kind=vocab.kind).save(tmp / name)
        names_dir = Path(names) if names is not None else data
        source_names = {ENTITY_NAMES: kg.entity_names, RELATION_NAMES: kg.relation_names}
        for name in (ENTITY_NAMES, RELATION_NAMES):
            if names_dir is not None and (names_dir / name).is_file():
                read_names(names_dir / name)  # a bad name file fails here, not when serving
                _copy(names_dir / name, tmp / name)
            elif source_names[name]:  # names read from the source itself (rdfs:label of a dumps folder)
                write_text(tmp / name, "".join(f"{key}\t{value}\n" for key, value in source_names[name].items()))
        _copy(index, tmp / INDEX)
        save_torch(tmp / FACTS, facts.facts)
        retracted = _retracted(kg, data=data, snapshot=snapshot, sizes=sizes, vocabularies=vocabularies)
        save_torch(tmp / RETRACTED, retracted)  # never cited nor inferred again
        save_torch(tmp / RETIRED, kg.retired_entities(snapshot).clone())  # entities whose facts were all retracted
        write_json(tmp / CALIBRATION, calibration.to_dict())
        _copy(index.with_name(index.name + ".json"), tmp / INDEX_SIDECAR)
        protocol = {key: metrics.get(key) for key in ("strategy", "model", "protocol")}
        parts = BundleParts(directory=tmp, version=version, snapshot=snapshot, model=model, facts=facts, valid=valid)
        for extra_files in extras:
            extra_files(parts)
        write_json(tmp / METRICS, {**protocol, **entry})
        files = hash_files(tmp)
        manifest = {
            "format": BUNDLE_FORMAT,
            "version": version,
            "snapshot": snapshot,
            "interaction": state["model_name"],
            "dim": int(state["dim"]),
            "num_entities": model.num_entities,
            "num_relations": model.num_relations,
            "content_hash": content_hash,
            "created": _utc_now(),
            "extra": extra,
            "files": files,
        }
        write_manifest(tmp / MANIFEST, info=manifest, files=files)
        _fsync_dir(tmp)
        try:
            os.rename(tmp, dest)
        except OSError:
            # someone else finished the same bundle first: fine if it is this one, else a clear error
            if _existing_bundle(dest, version=version, snapshot=snapshot, content_hash=content_hash):
                shutil.rmtree(tmp, ignore_errors=True)
                return dest
            raise
        _fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote bundle %s (version %s, snapshot %d of %s)", dest, version, snapshot, run_dir)
    return dest


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_tmp(bundles: Path | str) -> list[Path]:
    """Remove the half-written bundles (``.<name>.<pid>.<random>.tmp`` directories) in ``bundles`` whose writer
    process is gone (a killed run); a bundle still being written by a live process stays, and so does a final
    bundle. Names without a writer pid (written before pids were recorded) are stale. Returns what was removed."""
    bundles = Path(bundles)
    if not bundles.is_dir():
        return []
    removed = []
    for entry in bundles.iterdir():
        if not (entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_dir()):
            continue
        match = _TMP_NAME.match(entry.name)
        if match is not None and _alive(int(match["pid"])):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            removed.append(entry)
            logger.warning("removed %s, a bundle left half-written by a stopped run", entry)
    return removed


def _retracted(
    kg: GrowingKG, *, data: Path | None, snapshot: int, sizes: dict[str, int], vocabularies: dict[str, Vocabulary]
) -> torch.Tensor:
    """The facts never cited nor inferred again: those retracted up to ``snapshot`` and those a person rejected in
    the quarantine (:mod:`evergraph.kg.store.quarantine`; never learned) the bundle can name."""
    retracted = kg.retracted_facts(snapshot)
    if data is None:
        return retracted.clone()
    rejected = rejected_facts(data, upto=snapshot, entities=vocabularies[ENTITIES], relations=vocabularies[RELATIONS])
    rejected = rejected[(rejected[:, [0, 2]] < sizes[ENTITIES]).all(1) & (rejected[:, 1] < sizes[RELATIONS])]
    return torch.unique(torch.cat([retracted, rejected]), dim=0) if len(rejected) else retracted.clone()


def _facts_and_calibration(
    *,
    run_dir: Path,
    data: Path | None,
    snapshot: int,
    metrics: dict[str, Any],
    model: KGEModel,
    vocabularies: dict[str, Vocabulary],
) -> tuple[FactTable, Calibration, GrowingKG, torch.Tensor]:
    """The known (training) facts of snapshots ``0..snapshot`` with the snapshot each arrived in, the confidence
    calibration fitted on their validation facts, the data and those validation facts; the data must be what the
    run learned."""
    if data is None or not data.is_dir():
        raise BundleError(
            f"the data of {run_dir} ({data}) is not there; a bundle carries the known facts, so restore the "
            "dataset directory the run was trained on"
        )
    try:
        kg = load_shared(data, upto=snapshot)
        fresh = (kg.entities.labels, kg.relations.labels)
        run = (vocabularies[ENTITIES].labels, vocabularies[RELATIONS].labels)
        if any(a[: len(b)] != b[: len(a)] for a, b in zip(fresh, run, strict=True)):  # ids assigned otherwise
            kg = GrowingKG.load(data, upto=snapshot, entities=vocabularies[ENTITIES], relations=vocabularies[RELATIONS])
    except SnapshotError as error:
        raise BundleError(f"cannot read the facts of {run_dir} from {data}: {error}") from None
    for snap in kg.snapshots:
        entry = find_entry(metrics, snap.index)
        if entry is not None and entry["content_hash"] != snap.content_hash:
            raise BundleError(
                f"snapshot {snap.index} in {data} changed since {run_dir} learned it (history is append-only); "
                "restore the data it was trained on"
            )
    # the training facts still known at ``snapshot``: retracted ones are gone from the bundle
    trains = [retained(kg.snapshots, index=s.index, upto=snapshot, split="train") for s in kg.snapshots]
    rows = torch.cat([torch.cat([t, torch.full((len(t), 1), i)], dim=1) for i, t in enumerate(trains)])
    facts = FactTable(rows, num_entities=model.num_entities, num_relations=model.num_relations)
    valid = torch.cat([retained(kg.snapshots, index=s.index, upto=snapshot, split="valid") for s in kg.snapshots])
    calibration = fit_calibration(model=model, facts=facts, valid=valid)
    return facts, calibration, kg, valid


def switch_pointer(*, pointer: Path | str, bundle: Path | str, version: str) -> None:
    """Point ``pointer`` (e.g. ``HOME/champion.json``) at the bundle directory ``bundle`` of ``version``.

    The bundle must exist and its manifest name ``version`` (hashes are not re-checked here). The pointer stores
    the bundle's path relative to the pointer's directory when it lies inside it (so a home can be moved), else
    absolute, and is replaced atomically: a reader sees the old pointer or the new one, never half.
    """
    pointer, bundle = Path(pointer).absolute(), Path(bundle).absolute()
    manifest = _verify(bundle, hashes=False)
    if str(manifest.get("version")) != str(version):
        raise BundleError(
            f"{bundle} holds version {manifest.get('version')!r}, not {version!r}; point at the bundle of {version!r}"
        )
    target = bundle.resolve()
    base = pointer.parent.resolve()
    stored = target.relative_to(base).as_posix() if target.is_relative_to(base) else str(target)
    previous = read_pointer(pointer)
    write_json(pointer, {"version": str(version), "bundle": stored, "switched": _utc_now()})
    logger.info(
        "champion %s: version %s -> %s (%s)",
        pointer,
        previous.get("version") if previous else None,
        version,
        stored,
    )
