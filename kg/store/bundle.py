"""Self-contained serving bundles and the champion pointer.

Serving never reads MLflow (or a run directory): promotion writes the champion model version as a **bundle**,
one directory holding everything needed to answer queries, and then switches a small **pointer** file to it.

Bundle layout (written by :func:`evergraph.kg.store.bundle_writer.write_bundle`)::

    BUNDLE/weights.pt            plain state_dict of tensors: entity, relation (``torch.load(weights_only=True)``)
    BUNDLE/entities.tsv          vocabularies (``id<TAB>label``), truncated to the bundled snapshot
    BUNDLE/relations.tsv
    BUNDLE/entity_names.tsv      readable names, copied from the data directory when it has them (optional)
    BUNDLE/relation_names.tsv
    BUNDLE/index.faiss           FAISS index over the entity table (+ its sidecar ``index.faiss.json``)
    BUNDLE/facts.pt              the known facts: training facts of snapshots 0..N, ``LongTensor[n, 4]`` of
                                 ``(head, relation, tail, snapshot)`` (validation and test facts stay held out)
    BUNDLE/calibration.json      confidence calibration of inferred facts, fitted on the validation facts of
                                 snapshots 0..N (:mod:`evergraph.kg.store.calibration`)
    BUNDLE/retracted.pt          facts retracted up to snapshot N, ``LongTensor[n, 3]``: never cited, never inferred
    BUNDLE/retired.pt            entity ids whose facts were all retracted: not linked, predicted or similar
    BUNDLE/metrics.json          the snapshot's entry of the run's metrics.json (+ strategy, model, protocol)
    BUNDLE/rules.json            optional: rules mined from the known facts (:mod:`evergraph.kg.knowledge.rules`)
    BUNDLE/plausibility.json     optional: the plausibility filter (:mod:`evergraph.kg.knowledge.plausibility`);
                                 both written by ``write_bundle(extras=TRUST_FILES)``, as the pipeline does
    BUNDLE/manifest.json         format, version, snapshot, interaction, dim, sizes, content_hash, created, extra,
                                 and the SHA-256 of every other file; written last

A bundle is written into a temporary sibling directory and renamed into place, so ``BUNDLE`` either does not
exist or is complete. The pointer (``HOME/champion.json``, :class:`evergraph.kg.store.home.EvergraphHome`) is
``{"version", "bundle", "switched"}``, replaced atomically: a reader sees the old champion or the new one.

FAISS is imported only when an index is built or loaded, so ``import kg`` works without it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from evergraph.kg.engine.ingest import read_names
from evergraph.kg.engine.model import KGEModel
from evergraph.kg.engine.vocab import Vocabulary
from evergraph.kg.errors import BundleError
from evergraph.kg.store.calibration import Calibration
from evergraph.kg.store.facts import FactTable
from evergraph.kg.store.home import EvergraphHome
from evergraph.kg.store.manifest import MANIFEST, read_manifest, verify_files

if TYPE_CHECKING:  # evergraph.kg.store.index needs FAISS; imported lazily below
    from evergraph.kg.store.index import EntityIndex, IndexConfig

logger = logging.getLogger(__name__)

__all__ = [
    "BUNDLE_FORMAT",
    "Bundle",
    "BundleError",
    "BundleModel",
    "load_champion",
    "load_champion_model",
    "read_pointer",
]

BUNDLE_FORMAT = 2
"""Version of the bundle layout; :meth:`Bundle.load` refuses any other."""

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
RETRACTED = "retracted.pt"
RETIRED = "retired.pt"
REQUIRED_FILES = (WEIGHTS, ENTITIES, RELATIONS, INDEX, INDEX_SIDECAR, METRICS, FACTS, CALIBRATION)
"""Files every bundle has (the name files are optional)."""

_WEIGHT_KEYS = ("entity", "relation")


# ------------------------------------------------------------------------------------------------- helpers


def _read_json(path: Path, *, what: str, fix: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path} is missing ({what}); {fix}") from None
    except ValueError as error:
        raise BundleError(f"{path} is not valid JSON ({what}: {error}); {fix}") from None


# ----------------------------------------------------------------------------------------------- writing


# ----------------------------------------------------------------------------------------------- loading


def _verify(path: Path, *, hashes: bool = True) -> dict[str, Any]:
    """Read ``path``'s manifest (:mod:`evergraph.kg.store.manifest`), check its format and that it lists every
    required file, and check the files (with ``hashes``, their SHA-256 too); returns it."""
    fix = "write the bundle again"
    manifest = read_manifest(path / MANIFEST, error=BundleError, fix=fix, formats=(BUNDLE_FORMAT,))
    files = manifest["files"]
    missing = [name for name in REQUIRED_FILES if name not in files]
    if missing:
        raise BundleError(f"{path / MANIFEST} does not list {', '.join(missing)}; {fix}")
    nested = [name for name in files if Path(name).name != name or name in (".", "..")]
    if nested:
        raise BundleError(f"{path / MANIFEST} lists {nested[0]!r}, which is not a file of the bundle; {fix}")
    verify_files(path, files, error=BundleError, fix=fix, hashes=hashes)
    return manifest


def _load_model(path: Path, *, manifest: dict[str, Any], device: torch.device | str, mmap: bool = True) -> KGEModel:
    """The bundle's model (eval mode, on ``device``) from ``weights.pt`` and the manifest.

    With ``mmap`` (default) on the CPU, the tables are memory-mapped from ``weights.pt`` (``torch.load(mmap=True)``,
    copy-on-write) and become the model's parameters as they are: no copy, no random initialisation first, and
    processes serving the same bundle share the pages."""
    mapped = mmap and torch.device(device).type == "cpu"
    try:
        weights = torch.load(path / WEIGHTS, map_location=device, weights_only=True, mmap=mapped)
    except Exception as error:  # any unreadable file is the same problem to the user
        raise BundleError(f"{path / WEIGHTS} cannot be read ({error}); write the bundle again") from None
    if not isinstance(weights, dict) or sorted(weights) != sorted(_WEIGHT_KEYS):
        found = sorted(weights) if isinstance(weights, dict) else type(weights).__name__
        raise BundleError(f"{path / WEIGHTS} holds {found}, not {list(_WEIGHT_KEYS)}; write the bundle again")
    model = KGEModel(interaction=manifest["interaction"], dim=manifest["dim"]).to(device)  # empty tables
    widths = {"entity": model.entity.shape[1], "relation": model.relation.shape[1]}
    for key, width in widths.items():
        table = weights[key]
        if not isinstance(table, torch.Tensor) or table.dim() != 2 or table.shape[1] != width:
            shape = tuple(table.shape) if isinstance(table, torch.Tensor) else type(table).__name__
            raise BundleError(
                f"{path / WEIGHTS}: {key} table of shape {shape} does not fit the manifest ({manifest['interaction']}, "
                f"dim {manifest['dim']}: width {width}); write the bundle again"
            )
        if not table.dtype.is_floating_point:
            raise BundleError(f"{path / WEIGHTS}: {key} table holds {table.dtype}, not floats; write the bundle again")
    if weights["relation"].shape[0] % 2:
        raise BundleError(f"{path / WEIGHTS}: an odd number of relation rows (each relation has an inverse)")
    dtype = model.entity.dtype
    model.entity = torch.nn.Parameter(weights["entity"].to(dtype))
    model.relation = torch.nn.Parameter(weights["relation"].to(dtype))
    return model.eval()


@dataclass(frozen=True, eq=False)
class BundleModel:
    """Only the model of a bundle, with its manifest (``version``, ``snapshot``): what comparing with the champion
    needs, without its index, facts, vocabularies or calibration. Load with :func:`load_champion_model`."""

    path: Path
    manifest: dict[str, Any]
    model: KGEModel

    @property
    def version(self) -> str:
        """The model version this bundle serves."""
        return str(self.manifest["version"])

    @property
    def snapshot(self) -> int:
        """The snapshot of the growing KG the model was trained up to."""
        return int(self.manifest["snapshot"])


@dataclass(frozen=True, eq=False)
class Bundle(BundleModel):
    """A loaded serving bundle: model, vocabularies, readable names, entity index, known facts and the
    confidence calibration of inferred facts. Load with :meth:`load`."""

    entities: Vocabulary
    relations: Vocabulary
    index: EntityIndex
    facts: FactTable
    calibration: Calibration
    entity_names: dict[str, str] = field(default_factory=dict)
    relation_names: dict[str, str] = field(default_factory=dict)
    retracted: FactTable | None = None
    """Facts retracted up to the bundled snapshot (as a table for lookups); ``None`` when nothing was retracted."""
    retired: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))
    """Entity ids whose facts were all retracted (sorted): kept for their ids, never linked, predicted or similar."""

    def is_retired(self, entity: int) -> bool:
        """Whether ``entity`` is retired (every fact about it was retracted)."""
        return bool(len(self.retired)) and bool(torch.isin(torch.tensor([entity]), self.retired).item())

    def retracted_answers(self, entity: int, relation: int) -> torch.Tensor:
        """Answers of ``(entity, model relation, ?)`` that were retracted (empty when none)."""
        if self.retracted is None:
            return torch.empty(0, dtype=torch.long)
        return self.retracted.answers(entity, relation)

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
        mmap: bool = True,
    ) -> Bundle:
        """Load the bundle at ``path``; the model goes to ``device`` (default ``"cpu"``) in eval mode.

        With ``verify`` (default ``True``) every file's SHA-256 is checked against the manifest first; without
        it, only that the files exist. ``index_config`` (default: the saved one) sets ``nprobe``/``ef_search``/
        ``use_gpu`` for searching. With ``mmap`` (default ``True``) the weights (on the CPU), the FAISS index and
        the facts are memory-mapped from the bundle's files rather than read into memory: a server starts without
        reading the tables and several worker processes share one copy in the page cache. The SHA-256 check reads
        every file once regardless (``verify=False`` skips it). Any problem is a :class:`BundleError` naming the
        file.
        """
        from evergraph.kg.errors import EntityIndexError, EvergraphError
        from evergraph.kg.store.index import EntityIndex

        path = Path(path)
        manifest = _verify(path, hashes=verify)
        model = _load_model(path, manifest=manifest, device=device, mmap=mmap)
        try:
            entities = Vocabulary.load(path / ENTITIES, kind="entity")
            relations = Vocabulary.load(path / RELATIONS, kind="relation")
        except EvergraphError as error:  # a tampered vocabulary: the file and line are in the message
            raise BundleError(f"{path} has an unreadable vocabulary: {error}; write the bundle again") from None
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
                try:
                    names[name] = read_names(path / name)
                except EvergraphError as error:
                    raise BundleError(f"{path / name} cannot be read: {error}; write the bundle again") from None
        try:
            index = EntityIndex.load(path / INDEX, model=model, config=index_config, mmap=mmap)
        except EntityIndexError as error:
            raise BundleError(f"{path / INDEX}: {error}") from None
        try:
            rows = torch.load(path / FACTS, map_location="cpu", weights_only=True, mmap=mmap)
            facts = FactTable(rows, num_entities=model.num_entities, num_relations=model.num_relations)
        except Exception as error:  # unreadable or inconsistent: the same problem to the user
            raise BundleError(f"{path / FACTS} cannot be used ({error}); write the bundle again") from None
        try:
            calibration = Calibration.from_dict(
                _read_json(path / CALIBRATION, what="the confidence calibration", fix="write the bundle again")
            )
        except (KeyError, TypeError, ValueError) as error:
            raise BundleError(f"{path / CALIBRATION} is not a calibration ({error}); write the bundle again") from None
        retracted, retired = _retractions(path, files=manifest["files"], model=model)
        bundle = cls(
            path=path,
            retracted=retracted,
            retired=retired,
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


def _retractions(path: Path, *, files: dict[str, Any], model: KGEModel) -> tuple[FactTable | None, torch.Tensor]:
    """The optional retracted facts and retired entities (bundles written before retraction have neither)."""
    retracted, retired = None, torch.empty(0, dtype=torch.long)
    try:
        if RETRACTED in files:
            rows = torch.load(path / RETRACTED, map_location="cpu", weights_only=True).long().reshape(-1, 3)
            if len(rows):
                rows = torch.cat([rows, torch.zeros((len(rows), 1), dtype=torch.long)], dim=1)
                retracted = FactTable(rows, num_entities=model.num_entities, num_relations=model.num_relations)
        if RETIRED in files:
            retired = torch.sort(torch.load(path / RETIRED, map_location="cpu", weights_only=True).long()).values
    except Exception as error:  # unreadable or inconsistent: the same problem to the user
        raise BundleError(f"{path}: the retracted facts cannot be used ({error}); write the bundle again") from None
    return retracted, retired


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


def _champion_bundle(home: EvergraphHome | Path | str) -> tuple[Path, Path, dict[str, Any]]:
    """(pointer, bundle directory, pointer data) of ``home``'s champion; :class:`BundleError` when there is none."""
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
    return pointer, bundle, data


def load_champion_model(home: EvergraphHome | Path | str, *, device: torch.device | str = "cpu") -> BundleModel:
    """Only the model of ``home``'s champion bundle (its ``weights.pt`` checked against the manifest's SHA-256);
    the index, facts, vocabularies and calibration are not read."""
    pointer, bundle, data = _champion_bundle(home)
    manifest = _verify(bundle, hashes=False)
    verify_files(bundle, {WEIGHTS: manifest["files"][WEIGHTS]}, error=BundleError, fix="write the bundle again")
    loaded = BundleModel(path=bundle, manifest=manifest, model=_load_model(bundle, manifest=manifest, device=device))
    if loaded.version != str(data["version"]):
        raise BundleError(
            f"{pointer} says version {data['version']!r} but {bundle} holds {loaded.version!r}; promote again"
        )
    return loaded


def load_champion(home: EvergraphHome | Path | str, **kwargs: Any) -> Bundle:
    """Load the bundle the champion pointer of ``home`` names (``kwargs`` go to :meth:`Bundle.load`).

    ``home`` is an :class:`EvergraphHome` or its root directory.
    """
    pointer, bundle, data = _champion_bundle(home)
    loaded = Bundle.load(bundle, **kwargs)
    if loaded.version != str(data["version"]):
        raise BundleError(
            f"{pointer} says version {data['version']!r} but {bundle} holds {loaded.version!r}; promote again"
        )
    return loaded
