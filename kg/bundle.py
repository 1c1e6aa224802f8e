"""Self-contained serving bundles and the champion pointer.

Serving never reads MLflow (or a run directory): promotion writes the champion model version as a **bundle**,
one directory holding everything needed to answer queries, and then switches a small **pointer** file to it.

Bundle layout (written by :func:`write_bundle`)::

    BUNDLE/weights.pt            plain state_dict of tensors: entity, relation (``torch.load(weights_only=True)``)
    BUNDLE/entities.tsv          vocabularies (``id<TAB>label``), truncated to the bundled snapshot
    BUNDLE/relations.tsv
    BUNDLE/entity_names.tsv      readable names, copied from the data directory when it has them (optional)
    BUNDLE/relation_names.tsv
    BUNDLE/index.faiss           FAISS index over the entity table (+ its sidecar ``index.faiss.json``)
    BUNDLE/facts.pt              the known facts: training facts of snapshots 0..N, ``LongTensor[n, 4]`` of
                                 ``(head, relation, tail, snapshot)`` (validation and test facts stay held out)
    BUNDLE/calibration.json      confidence calibration of inferred facts, fitted on the validation facts of
                                 snapshots 0..N (:mod:`kg.calibration`)
    BUNDLE/metrics.json          the snapshot's entry of the run's metrics.json (+ strategy, model, protocol)
    BUNDLE/manifest.json         format, version, snapshot, interaction, dim, sizes, content_hash, created, extra,
                                 and the SHA-256 of every other file; written last

A bundle is written into a temporary sibling directory and renamed into place, so ``BUNDLE`` either does not
exist or is complete. The pointer (``HOME/champion.json``, :class:`kg.home.EvergraphHome`) is
``{"version", "bundle", "switched"}``, replaced atomically: a reader sees the old champion or the new one.

FAISS is imported only when an index is built or loaded, so ``import kg`` works without it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from kg.atomic import save_torch, sha256_file, write_json
from kg.calibration import Calibration, fit_calibration
from kg.errors import EvergraphError, SnapshotError
from kg.facts import FactTable
from kg.home import EvergraphHome
from kg.ingest import GrowingKG, load_shared, read_names
from kg.lifelong import RunPaths, find_entry, load_model_checkpoint
from kg.model import KGEModel
from kg.vocab import Vocabulary

if TYPE_CHECKING:  # kg.index needs FAISS; imported lazily below
    from kg.index import EntityIndex, IndexConfig

logger = logging.getLogger(__name__)

__all__ = [
    "BUNDLE_FORMAT",
    "Bundle",
    "BundleError",
    "build_snapshot_index",
    "index_path",
    "load_champion",
    "read_pointer",
    "switch_pointer",
    "write_bundle",
]

BUNDLE_FORMAT = 2
"""Version of the bundle layout; :meth:`Bundle.load` refuses any other."""

MANIFEST = "manifest.json"
WEIGHTS = "weights.pt"
ENTITIES = "entities.tsv"
RELATIONS = "relations.tsv"
ENTITY_NAMES = "entity_names.tsv"
RELATION_NAMES = "relation_names.tsv"
INDEX = "index.faiss"
INDEX_SIDECAR = "index.faiss.json"
METRICS = "metrics.json"
FACTS = "facts.pt"
CALIBRATION = "calibration.json"
REQUIRED_FILES = (WEIGHTS, ENTITIES, RELATIONS, INDEX, INDEX_SIDECAR, METRICS, FACTS, CALIBRATION)
"""Files every bundle has (the name files are optional)."""

_WEIGHT_KEYS = ("entity", "relation")


class BundleError(EvergraphError):
    """A bundle or champion pointer cannot be written or loaded as asked; the message says what to do next."""


# ------------------------------------------------------------------------------------------------- helpers


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


def _read_json(path: Path, *, what: str, fix: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path} is missing ({what}); {fix}") from None
    except ValueError as error:
        raise BundleError(f"{path} is not valid JSON ({what}: {error}); {fix}") from None


def _load_snapshot_model(run_dir: Path, snapshot: int) -> tuple[KGEModel, dict[str, Any]]:
    path = RunPaths(run_dir).snapshot_checkpoint(snapshot)
    if not path.is_file():
        raise BundleError(
            f"{run_dir} has no finished snapshot {snapshot} ({path} is missing); "
            f"train it first (`evergraph train --out {run_dir} --upto {snapshot}`) or pick a finished snapshot"
        )
    return load_model_checkpoint(path, device="cpu")


# ----------------------------------------------------------------------------------------------- the index


def index_path(run_dir: Path | str, snapshot: int) -> Path:
    """Where the FAISS index of ``snapshot`` of a run lives: ``run_dir/indexes/snapshot-N.faiss`` (+ ``.json``)."""
    return Path(run_dir) / "indexes" / f"snapshot-{snapshot}.faiss"


def build_snapshot_index(*, run_dir: Path | str, snapshot: int, config: IndexConfig | None = None) -> Path:
    """Index the entity table of a finished snapshot's checkpoint and save it to :func:`index_path`.

    ``config`` defaults to ``IndexConfig()`` (exact ``Flat``). Building again replaces the index (each of the
    index file and its sidecar is replaced atomically). Returns the index path.
    """
    from kg.index import EntityIndex

    run_dir = Path(run_dir)
    model, _ = _load_snapshot_model(run_dir, snapshot)
    path = index_path(run_dir, snapshot)
    EntityIndex.build(model, config=config).save(path)
    logger.info("indexed snapshot %d of %s -> %s", snapshot, run_dir, path)
    return path


def _snapshot_index(run_dir: Path, snapshot: int, model: KGEModel) -> Path:
    """The snapshot's saved index, (re)built when missing or not matching ``model``."""
    from kg.index import EntityIndex, EntityIndexError

    path = index_path(run_dir, snapshot)
    if path.is_file():
        try:
            EntityIndex.load(path, model=model)
            return path
        except EntityIndexError as error:
            logger.warning("rebuilding the index of snapshot %d: %s", snapshot, error)
    return build_snapshot_index(run_dir=run_dir, snapshot=snapshot)


# ----------------------------------------------------------------------------------------------- writing


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
) -> Path:
    """Write snapshot ``snapshot`` of the engine run ``run_dir`` as the serving bundle ``dest`` of ``version``.

    ``extra`` (default: ``{}``) is any JSON-serialisable metadata kept in the manifest (run id, source, ...).
    ``names`` (default: the run's data directory) is the directory whose ``entity_names.tsv`` and
    ``relation_names.tsv`` are copied into the bundle, when it has them. The known facts and their snapshots
    are read from the run's data directory (checked against the content hashes the run learned), and the
    confidence of inferred facts is calibrated on its validation facts (:mod:`kg.calibration`).
    The index is copied from :func:`index_path` and built (``Flat``) first when missing. Everything is written
    to a temporary sibling directory which is then renamed to ``dest``: ``dest`` is complete or absent, and a
    failed write leaves nothing behind. If ``dest`` already holds this version of this snapshot (same content
    hash) and verifies, it is returned unchanged; any other content at ``dest`` is a :class:`BundleError`.
    Returns ``dest``.
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
    facts, calibration = _facts_and_calibration(
        run_dir=run_dir, data=data, snapshot=snapshot, metrics=metrics, model=model, vocabularies=vocabularies
    )

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        weights = {key: model.state_dict()[key].detach().cpu().clone() for key in _WEIGHT_KEYS}
        save_torch(tmp / WEIGHTS, weights)
        for name, vocab in vocabularies.items():
            Vocabulary(vocab.labels[: sizes[name]], kind=vocab.kind).save(tmp / name)
        names_dir = Path(names) if names is not None else data
        for name in (ENTITY_NAMES, RELATION_NAMES):
            if names_dir is not None and (names_dir / name).is_file():
                read_names(names_dir / name)  # a bad name file fails here, not when serving
                _copy(names_dir / name, tmp / name)
        _copy(index, tmp / INDEX)
        save_torch(tmp / FACTS, facts.facts)
        write_json(tmp / CALIBRATION, calibration.to_dict())
        _copy(index.with_name(index.name + ".json"), tmp / INDEX_SIDECAR)
        protocol = {key: metrics.get(key) for key in ("strategy", "model", "protocol")}
        write_json(tmp / METRICS, {**protocol, **entry})
        files = {path.name: sha256_file(path) for path in sorted(tmp.iterdir())}
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
        write_json(tmp / MANIFEST, manifest)
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


def _facts_and_calibration(
    *,
    run_dir: Path,
    data: Path | None,
    snapshot: int,
    metrics: dict[str, Any],
    model: KGEModel,
    vocabularies: dict[str, Vocabulary],
) -> tuple[FactTable, Calibration]:
    """The known (training) facts of snapshots ``0..snapshot`` with the snapshot each arrived in, and the
    confidence calibration fitted on their validation facts; the data must be what the run learned."""
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
    rows = torch.cat([torch.cat([s.train, torch.full((len(s.train), 1), s.index)], dim=1) for s in kg.snapshots])
    facts = FactTable(rows, num_entities=model.num_entities, num_relations=model.num_relations)
    valid = torch.cat([s.valid for s in kg.snapshots])
    calibration = fit_calibration(model=model, facts=facts, valid=valid)
    return facts, calibration


# ----------------------------------------------------------------------------------------------- loading


def _verify(path: Path, *, hashes: bool = True) -> dict[str, Any]:
    """Read ``path``'s manifest, check its format and (with ``hashes``) every file's SHA-256; returns it."""
    manifest = _read_json(
        path / MANIFEST, what="not a bundle, or one whose write never finished", fix="write the bundle again"
    )
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise BundleError(
            f"{path / MANIFEST}: bundle format {found!r}, this Evergraph reads format {BUNDLE_FORMAT}; "
            "write the bundle again with this version"
        )
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise BundleError(f"{path / MANIFEST} lists no files; write the bundle again")
    missing = [name for name in REQUIRED_FILES if name not in files]
    if missing:
        raise BundleError(f"{path / MANIFEST} does not list {', '.join(missing)}; write the bundle again")
    for name, expected in files.items():
        if Path(name).name != name or name in (".", ".."):
            raise BundleError(f"{path / MANIFEST} lists {name!r}, which is not a file of the bundle; write it again")
        file = path / name
        if not file.is_file():
            raise BundleError(f"{file} is missing from the bundle; write the bundle again")
        if hashes and sha256_file(file) != expected:
            raise BundleError(
                f"{file} does not match the SHA-256 in {MANIFEST} (edited or damaged); write the bundle again"
            )
    return manifest


@dataclass(frozen=True, eq=False)
class Bundle:
    """A loaded serving bundle: model, vocabularies, readable names, entity index, known facts and the
    confidence calibration of inferred facts. Load with :meth:`load`."""

    path: Path
    manifest: dict[str, Any]
    model: KGEModel
    entities: Vocabulary
    relations: Vocabulary
    index: EntityIndex
    facts: FactTable
    calibration: Calibration
    entity_names: dict[str, str] = field(default_factory=dict)
    relation_names: dict[str, str] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """The model version this bundle serves."""
        return str(self.manifest["version"])

    @property
    def snapshot(self) -> int:
        """The snapshot of the growing KG the model was trained up to."""
        return int(self.manifest["snapshot"])

    @property
    def metrics(self) -> dict[str, Any]:
        """The snapshot's metrics entry (``metrics.json``; read on each access)."""
        return json.loads((self.path / METRICS).read_text(encoding="utf-8"))

    def __repr__(self) -> str:
        return (
            f"Bundle(version={self.version!r}, snapshot={self.snapshot}, {self.model.interaction_name}, "
            f"{self.model.num_entities} entities, {self.model.num_relations} relations, path={str(self.path)!r})"
        )

    @classmethod
    def load(
        cls,
        path: Path | str,
        *,
        device: torch.device | str = "cpu",
        verify: bool = True,
        index_config: IndexConfig | None = None,
    ) -> Bundle:
        """Load the bundle at ``path``; the model goes to ``device`` (default ``"cpu"``) in eval mode.

        With ``verify`` (default ``True``) every file's SHA-256 is checked against the manifest first; without
        it, only that the files exist. ``index_config`` (default: the saved one) sets ``nprobe``/``ef_search``/
        ``use_gpu`` for searching. Any problem is a :class:`BundleError` naming the file.
        """
        from kg.index import EntityIndex, EntityIndexError

        path = Path(path)
        manifest = _verify(path, hashes=verify)
        try:
            weights = torch.load(path / WEIGHTS, map_location=device, weights_only=True)
        except Exception as error:  # any unreadable file is the same problem to the user
            raise BundleError(f"{path / WEIGHTS} cannot be read ({error}); write the bundle again") from None
        if not isinstance(weights, dict) or sorted(weights) != sorted(_WEIGHT_KEYS):
            found = sorted(weights) if isinstance(weights, dict) else type(weights).__name__
            raise BundleError(f"{path / WEIGHTS} holds {found}, not {list(_WEIGHT_KEYS)}; write the bundle again")
        model = KGEModel(
            interaction=manifest["interaction"],
            num_entities=weights["entity"].shape[0],
            num_relations=weights["relation"].shape[0] // 2,
            dim=manifest["dim"],
        ).to(device)
        try:
            model.load_state_dict(weights)
        except RuntimeError as error:
            raise BundleError(f"{path / WEIGHTS} does not fit the manifest ({error}); write the bundle again") from None
        model.eval()
        entities = Vocabulary.load(path / ENTITIES, kind="entity")
        relations = Vocabulary.load(path / RELATIONS, kind="relation")
        found = (model.num_entities, model.num_relations, len(entities), len(relations))
        expected = (manifest["num_entities"], manifest["num_relations"]) * 2
        if found != expected:
            raise BundleError(
                f"{path}: entities/relations in weights and vocabularies {found} disagree with the manifest "
                f"{expected}; write the bundle again"
            )
        names: dict[str, dict[str, str]] = {}
        for name in (ENTITY_NAMES, RELATION_NAMES):
            if (path / name).is_file():
                names[name] = read_names(path / name)
        try:
            index = EntityIndex.load(path / INDEX, model=model, config=index_config)
        except EntityIndexError as error:
            raise BundleError(f"{path / INDEX}: {error}") from None
        try:
            rows = torch.load(path / FACTS, map_location="cpu", weights_only=True)
            facts = FactTable(rows, num_entities=model.num_entities, num_relations=model.num_relations)
        except Exception as error:  # unreadable or inconsistent: the same problem to the user
            raise BundleError(f"{path / FACTS} cannot be used ({error}); write the bundle again") from None
        try:
            calibration = Calibration.from_dict(
                _read_json(path / CALIBRATION, what="the confidence calibration", fix="write the bundle again")
            )
        except (KeyError, TypeError, ValueError) as error:
            raise BundleError(f"{path / CALIBRATION} is not a calibration ({error}); write the bundle again") from None
        bundle = cls(
            path=path,
            manifest=manifest,
            model=model,
            entities=entities,
            relations=relations,
            index=index,
            facts=facts,
            calibration=calibration,
            entity_names=names.get(ENTITY_NAMES, {}),
            relation_names=names.get(RELATION_NAMES, {}),
        )
        logger.info("loaded %r", bundle)
        return bundle


# ----------------------------------------------------------------------------------------------- pointer


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


def read_pointer(pointer: Path | str) -> dict[str, Any] | None:
    """The pointer ``{"version", "bundle", "switched"}``, or ``None`` when there is no pointer file yet.

    ``bundle`` is as stored: relative to the pointer's directory, or absolute.
    """
    pointer = Path(pointer)
    if not pointer.exists():
        return None
    data = _read_json(pointer, what="the champion pointer", fix="switch it again (promote or roll back)")
    if not isinstance(data, dict) or not {"version", "bundle"} <= set(data):
        raise BundleError(f"{pointer} is not a champion pointer (needs version and bundle); promote again")
    return data


def load_champion(home: EvergraphHome | Path | str, **kwargs: Any) -> Bundle:
    """Load the bundle the champion pointer of ``home`` names (``kwargs`` go to :meth:`Bundle.load`).

    ``home`` is an :class:`EvergraphHome` or its root directory.
    """
    home = home if isinstance(home, EvergraphHome) else EvergraphHome.resolve(home)
    pointer = home.champion_pointer
    data = read_pointer(pointer)
    if data is None:
        raise BundleError(f"no champion yet ({pointer} does not exist): run `evergraph run` first")
    bundle = pointer.parent / data["bundle"]  # an absolute stored path replaces the base
    if not bundle.is_dir():
        raise BundleError(
            f"{pointer} names bundle {bundle}, which does not exist; promote a version again or roll back"
        )
    loaded = Bundle.load(bundle, **kwargs)
    if loaded.version != str(data["version"]):
        raise BundleError(
            f"{pointer} says version {data['version']!r} but {bundle} holds {loaded.version!r}; promote again"
        )
    return loaded
