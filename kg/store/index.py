"""FAISS nearest-neighbour index over entity vectors, for fast top-k link prediction.

A translational-distance interaction (:mod:`evergraph.kg.engine.interactions`: ``transe``, ``rotate``) scores ``(h, r,
t)`` as ``-||query(h, r) - t||_2``, so the top-k tails of ``(h, r, ?)`` are the k nearest entity vectors to
``query(h, r)`` under the L2 metric; an inner-product interaction (``distmult``, ``complex``: ``<query(h, r), t>``)
is a maximum-inner-product search. Either is exactly what a FAISS index answers. :data:`METRICS` records the
metric per interaction; search scores are then minus the L2 distance or the inner products themselves.

The index type follows the size by default (factory ``auto``): exact brute force (``Flat``) up to
:attr:`IndexConfig.approximate_above` entities, an approximate factory (:attr:`IndexConfig.approximate_factory`,
``HNSW32`` by default) above it. Every approximate index has its recall@10 against exact search measured when it
is built, on a fixed sample of query vectors, and recorded in its sidecar (``build``); below
:attr:`IndexConfig.min_recall` (0.95) the build falls back to ``Flat`` with a warning (or, with
``low_recall="error"``, refuses). An explicit factory string (``Flat``, ``HNSW32``, ``IVF4096,PQ32``, ...) is used
as given, its recall measured and checked the same way; :meth:`EntityIndex.recall_at_k` compares two indexes.

An index is a snapshot of the entity table: rebuild it after training or growing the model.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from evergraph.kg.engine.atomic import sha256_file
from evergraph.kg.engine.model import KGEModel
from evergraph.kg.engine.resolver import Registry
from evergraph.kg.errors import EntityIndexError, UnknownComponentError
from evergraph.kg.store.manifest import read_manifest, verify_files, write_manifest

try:
    import faiss
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "evergraph.kg.store.index needs FAISS: pip install 'evergraph[cpu]' (or 'evergraph[gpu]')"
    ) from error

logger = logging.getLogger(__name__)

Vectors = torch.Tensor | np.ndarray

MIN_VECTORS_PER_LIST = 39
"""FAISS's k-means wants about this many training vectors per IVF list; fewer trains worse centroids."""

_GPU_MAX_K = 2048  # the largest k (and nprobe) FAISS GPU indexes can select
_SIDECAR_FORMAT = 2
"""Sidecar layout written now: a :mod:`evergraph.kg.store.manifest` manifest whose ``files`` lists the index;
format 1 (a ``sha256`` key instead of ``files``, in bundles written before) is still read."""
_SIDECAR_KEYS = ("factory", "metric", "interaction", "num_entities", "width", "config")
_METRIC_NAMES = {faiss.METRIC_L2: "L2", faiss.METRIC_INNER_PRODUCT: "inner_product"}

METRICS: Registry[int] = Registry("FAISS metric")
"""FAISS metric per interaction name. Translational-distance interactions (``transe``, ``rotate``) rank tails
by L2 distance to ``query(h, r)`` -> ``METRIC_L2``. Inner-product scorers (``distmult``, ``complex``: score
``<query(h, r), t>``) -> ``METRIC_INNER_PRODUCT``. Register a metric here whenever a new interaction is added."""
METRICS.register("transe")(faiss.METRIC_L2)
METRICS.register("rotate")(faiss.METRIC_L2)
METRICS.register("distmult")(faiss.METRIC_INNER_PRODUCT)
METRICS.register("complex")(faiss.METRIC_INNER_PRODUCT)


AUTO = "auto"
"""The factory that follows the size: ``Flat`` up to ``approximate_above`` entities, ``approximate_factory`` above."""

EXACT = "Flat"

RECALL_K = 10


class IndexConfig(BaseModel):
    """How to build and search an :class:`EntityIndex`."""

    model_config = ConfigDict(extra="forbid")

    factory: str = Field(
        AUTO,
        min_length=1,
        description="auto (default: Flat up to approximate_above entities, approximate_factory above) or a "
        "faiss.index_factory string: Flat (exact) | HNSW32 | IVF4096,PQ32 | ...",
    )
    approximate_above: int = Field(
        500_000, gt=0, description="factory auto: exact Flat up to this many entities, approximate_factory above"
    )
    approximate_factory: str = Field(
        "HNSW32", min_length=1, description="factory auto: the approximate index of large graphs (HNSW32 | IVF..,PQ..)"
    )
    min_recall: float = Field(
        0.95,
        ge=0,
        le=1,
        description="an approximate index whose recall@10 against exact search, measured at build time, is below "
        "this falls back to Flat (or fails, see low_recall)",
    )
    recall_queries: int = Field(
        1000, gt=0, description="query vectors (a fixed random sample) recall@10 is measured on at build time"
    )
    low_recall: Literal["exact", "error"] = Field(
        "exact", description="below min_recall: exact = build Flat instead (with a warning), error = refuse"
    )
    nprobe: int = Field(16, gt=0, description="IVF lists visited per query (IVF factories only); default 16")
    ef_search: int = Field(128, gt=0, description="HNSW search breadth (HNSW factories/quantizers); default 128")
    use_gpu: bool | None = Field(
        None, description="None = auto (GPU when FAISS has GPU support and sees a GPU), True = require, False = CPU"
    )


def metric_for(interaction: str) -> int:
    """The FAISS metric of ``interaction`` (from :data:`METRICS`); ``UnknownComponentError`` when it has none."""
    if interaction not in METRICS:
        known = ", ".join(METRICS.names())
        raise UnknownComponentError(
            f"no FAISS metric is known for interaction {interaction!r} (known: {known}); "
            "register one in evergraph.kg.store.index.METRICS"
        )
    return METRICS.get(interaction)


def _gpu_available() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _as_float32(vectors: Vectors, *, what: str) -> np.ndarray:
    if isinstance(vectors, torch.Tensor):
        array = vectors.detach().to("cpu", torch.float32).contiguous().numpy()
    else:
        array = np.ascontiguousarray(vectors, dtype=np.float32)
    if array.ndim != 2:
        raise EntityIndexError(f"{what} must be a 2-D [rows, width] matrix, got shape {tuple(array.shape)}")
    return array


def _read_sidecar(path: Path, *, fix: str) -> dict[str, Any]:
    """The sidecar at ``path`` as a format-2 manifest (a format-1 ``sha256`` is read as ``files``)."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise EntityIndexError(f"{path} is not valid JSON ({error}); {fix}") from None
    if isinstance(old, dict) and old.get("format") == 1 and isinstance(old.get("sha256"), str):
        index_name = path.name.removesuffix(".json")
        return {**old, "files": {index_name: old.pop("sha256")}}
    return read_manifest(path, error=EntityIndexError, fix=fix, formats=(_SIDECAR_FORMAT,))


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


class EntityIndex:
    """A FAISS index over a model's entity vectors; row ``i`` of the index is entity id ``i``.

    Build with :meth:`build` (from a :class:`KGEModel`) or :meth:`from_vectors`, restore with :meth:`load`.
    Searches return ``(scores, ids)`` CPU tensors, scores higher-is-better (minus the L2 distance).
    """

    def __init__(
        self,
        index: Any,
        *,
        interaction: str,
        config: IndexConfig,
        gpu_resources: Any | None = None,
        build_info: dict[str, Any] | None = None,
    ) -> None:
        """Wrap a trained, filled FAISS ``index`` (prefer :meth:`build`, :meth:`from_vectors`, :meth:`load`)."""
        self._index = index
        self._gpu_resources = gpu_resources  # must outlive a GPU index
        self.interaction = interaction.lower()
        self.metric: int = metric_for(self.interaction)
        self.config = config
        self.build_info: dict[str, Any] = dict(build_info or {})
        """How the index was chosen and how good it is: ``factory``, ``requested`` (``auto`` or a factory),
        ``recall@10`` against exact search (1.0 for ``Flat``, ``None`` when unknown), ``recall_queries``,
        ``fell_back_from`` (the approximate factory given up for low recall, or ``None``), ``seconds``. Empty
        for indexes saved before it existed."""

    # -- properties ---------------------------------------------------------------------------------------

    @property
    def num_entities(self) -> int:
        """Number of indexed entity vectors (ids ``0..num_entities-1``)."""
        return int(self._index.ntotal)

    @property
    def width(self) -> int:
        """Floats per entity vector (RotatE: ``2 * dim``)."""
        return int(self._index.d)

    @property
    def factory(self) -> str:
        """The ``faiss.index_factory`` string the index was built from (``auto`` resolved)."""
        return self.config.factory

    @property
    def recall_at_10(self) -> float | None:
        """recall@10 against exact search measured when the index was built (``None`` when not recorded)."""
        return self.build_info.get(f"recall@{RECALL_K}")

    @property
    def on_gpu(self) -> bool:
        """Whether the index lives on a GPU."""
        return self._gpu_resources is not None

    def __repr__(self) -> str:
        where = "gpu" if self.on_gpu else "cpu"
        return (
            f"EntityIndex({self.factory!r}, interaction={self.interaction!r}, "
            f"num_entities={self.num_entities}, width={self.width}, {where})"
        )

    # -- building -----------------------------------------------------------------------------------------

    @classmethod
    def build(cls, model: KGEModel, *, config: IndexConfig | None = None) -> EntityIndex:
        """Index ``model``'s entity table with its interaction's metric (``config`` defaults to ``IndexConfig()``).

        The index is a copy: rebuild it after the model trains or grows. An approximate index's recall@10 is
        measured on the query vectors of a fixed random sample of ``(entity, relation)`` pairs.
        """
        config = config or IndexConfig()
        count = min(config.recall_queries, max(model.num_entities, 1))
        generator = torch.Generator().manual_seed(0)
        queries = None
        if model.num_entities and model.num_relations:
            with torch.no_grad():
                entities = torch.randint(model.num_entities, (count,), generator=generator)
                relations = torch.randint(2 * model.num_relations, (count,), generator=generator)
                queries = model.query(entities.to(model.device), relations.to(model.device))
        return cls.from_vectors(
            model.entity.detach(), interaction=model.interaction_name, config=config, recall_queries=queries
        )

    @classmethod
    def from_vectors(
        cls,
        vectors: Vectors,
        *,
        interaction: str,
        config: IndexConfig | None = None,
        recall_queries: Vectors | None = None,
    ) -> EntityIndex:
        """Index a ``[num_entities, width]`` entity matrix (any float dtype/device; copied to float32 on the CPU)
        for ``interaction`` (``transe`` | ``rotate`` | ``distmult`` | ``complex``). ``config`` defaults to
        ``IndexConfig()`` (factory ``auto``: exact up to ``approximate_above`` entities).

        Factories that need training (IVF, PQ, ...) are trained on the vectors themselves; too few vectors for
        the requested IVF list count raises :class:`EntityIndexError` naming a count that would work. An
        approximate index's recall@10 against exact search is measured on ``recall_queries`` (default: a fixed
        sample of the vectors, slightly perturbed) and checked against ``config.min_recall``.
        """
        config = config or IndexConfig()
        metric = metric_for(interaction)
        array = _as_float32(vectors, what="entity vectors")
        count, width = array.shape
        if count == 0:
            raise EntityIndexError("cannot index an empty entity table; add entities to the model first")
        if not np.isfinite(array).all():
            raise EntityIndexError("entity vectors contain NaN or inf (did training diverge?); nothing was indexed")
        started = time.perf_counter()
        requested = config.factory
        factory = requested
        if requested == AUTO:
            factory = config.approximate_factory if count > config.approximate_above else EXACT
        info: dict[str, Any] = {
            "requested": requested,
            "factory": factory,
            f"recall@{RECALL_K}": 1.0,
            "recall_queries": 0,
            "fell_back_from": None,
        }
        index = _filled_index(array, factory=factory, metric=metric)
        if factory != EXACT:
            queries = _recall_queries(array, recall_queries, limit=config.recall_queries)
            _apply_search_params(index, config=config, gpu=False)
            recall = _recall(index, array, queries, metric=metric)
            info.update({f"recall@{RECALL_K}": round(recall, 4), "recall_queries": len(queries)})
            if recall < config.min_recall:
                message = (
                    f"the {factory!r} index finds {recall:.3f} of the exact top-{RECALL_K} on {len(queries)} sample "
                    f"queries, below min_recall={config.min_recall}"
                )
                if config.low_recall == "error":
                    raise EntityIndexError(
                        f"{message}; raise ef_search/nprobe, pick another approximate_factory, lower min_recall or "
                        "set low_recall='exact' to fall back to Flat"
                    )
                logger.warning("%s: building the exact Flat index instead", message)
                info.update({"factory": EXACT, "fell_back_from": factory})
                factory = EXACT
                index = _filled_index(array, factory=EXACT, metric=metric)
        config = config.model_copy(update={"factory": factory})
        index, resources = _place(index, use_gpu=config.use_gpu)
        _apply_search_params(index, config=config, gpu=resources is not None)
        info["seconds"] = round(time.perf_counter() - started, 3)
        logger.info(
            "indexed %d entities x %d floats with %r (%s, %s, recall@%d %s) in %.2fs",
            count,
            width,
            factory,
            _METRIC_NAMES.get(metric, metric),
            "gpu" if resources is not None else "cpu",
            RECALL_K,
            info[f"recall@{RECALL_K}"],
            info["seconds"],
        )
        return cls(index, interaction=interaction, config=config, gpu_resources=resources, build_info=info)

    # -- searching ----------------------------------------------------------------------------------------

    def search(self, queries: Vectors, *, k: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` best entities for each query vector ``[b, width]`` (default ``k=10``).

        Returns ``(scores, ids)``: ``FloatTensor[b, k]`` and ``LongTensor[b, k]`` on the CPU, best first.
        Scores follow the model's convention, higher is better: minus the (not squared) L2 distance for L2
        interactions, the inner product for inner-product ones. ``k`` larger than :attr:`num_entities` is cut to
        it. An approximate index may find fewer than ``k`` results; missing slots have id ``-1`` and score
        ``-inf``.
        """
        if k < 1:
            raise EntityIndexError(f"k must be at least 1, got {k}")
        array = _as_float32(queries, what="queries")
        if array.shape[1] != self.width:
            raise EntityIndexError(f"queries have width {array.shape[1]} but the index holds width {self.width}")
        k = min(k, self.num_entities)
        if self.on_gpu and k > _GPU_MAX_K:
            raise EntityIndexError(f"FAISS GPU indexes return at most k={_GPU_MAX_K}; use use_gpu=False for k={k}")
        distances, ids = self._index.search(array, k)
        ids_ = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
        scores = torch.from_numpy(np.ascontiguousarray(distances, dtype=np.float32))
        if self.metric == faiss.METRIC_L2:
            scores = scores.clamp_(min=0).sqrt_().neg_()  # FAISS returns squared L2 distances
        return scores.masked_fill_(ids_ < 0, float("-inf")), ids_

    @torch.no_grad()
    def predict_tails(
        self, model: KGEModel, entities: torch.Tensor, relations: torch.Tensor, *, k: int = 10
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` tails (default ``k=10``) of ``(entities[i], relations[i], ?)``, relations as model ids
        (``2r`` forward, ``2r + 1`` inverse, i.e. head prediction). Same return value as :meth:`search`.

        Raw ranking: known true tails and the query entity itself are not filtered out. ``model`` must be the
        model the index was built from (same interaction, width and entity count).
        """
        self._check_model(model)
        device = model.device
        queries = model.query(entities.reshape(-1).to(device), relations.reshape(-1).to(device))
        return self.search(queries, k=k)

    def recall_at_k(self, exact: EntityIndex, queries: Vectors, *, k: int = 10) -> float:
        """Mean fraction of ``exact``'s top-``k`` (default ``k=10``) that this index also returns in its top-k.

        ``exact`` is usually a ``Flat`` index over the same vectors; 1.0 means this index lost nothing.
        """
        if (exact.num_entities, exact.width, exact.metric) != (self.num_entities, self.width, self.metric):
            raise EntityIndexError(
                f"cannot compare indexes over different data: {self!r} vs {exact!r} (or different metrics)"
            )
        _, found = self.search(queries, k=k)
        _, truth = exact.search(queries, k=k)
        if truth.numel() == 0:
            return 1.0
        valid = truth >= 0
        hits = ((truth.unsqueeze(2) == found.unsqueeze(1)).any(2) & valid).sum()
        return float(hits) / max(int(valid.sum()), 1)

    # -- saving and loading -------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to ``path`` and a JSON sidecar ``<path>.json`` (factory, metric, interaction,
        num_entities, width, config, SHA-256 of the index file). Both files are replaced atomically; a GPU
        index is copied to the CPU for writing.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        index = faiss.index_gpu_to_cpu(self._index) if self.on_gpu else self._index
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(tmp_name)
        try:
            os.close(fd)
            faiss.write_index(index, str(tmp))
            with tmp.open("rb+") as handle:
                os.fsync(handle.fileno())
            digest = sha256_file(tmp)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        write_manifest(
            _sidecar(path),
            info={
                "format": _SIDECAR_FORMAT,
                "factory": self.factory,
                "metric": _METRIC_NAMES.get(self.metric, self.metric),
                "interaction": self.interaction,
                "num_entities": self.num_entities,
                "width": self.width,
                "config": self.config.model_dump(),
                "build": self.build_info,
            },
            files={path.name: digest},
        )
        logger.debug("saved %r to %s", self, path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        model: KGEModel | None = None,
        config: IndexConfig | None = None,
        mmap: bool = False,
    ) -> EntityIndex:
        """Read an index written by :meth:`save` and check it against its sidecar.

        With ``mmap`` (default False) the vectors and codes are memory-mapped from the file where FAISS allows
        it (``IO_FLAG_MMAP_IFC``: Flat, HNSW storage, IVF lists) instead of read into memory, so processes that
        load the same file share one copy in the page cache; the file must then not be changed while in use
        (bundles never are). Falls back to a plain read when FAISS cannot map this index type.

        ``config`` (default: the saved one) sets ``nprobe``/``ef_search``/``use_gpu`` for searching; its
        factory must be the saved one. With ``model``, also check the index fits it (interaction, width and
        entity count). Any disagreement raises :class:`EntityIndexError`.
        """
        path = Path(path)
        meta_path = _sidecar(path)
        fix = "re-save the index with EntityIndex.save"
        if not meta_path.is_file():
            raise EntityIndexError(f"{meta_path} is missing; {fix}")
        meta = _read_sidecar(meta_path, fix=fix)
        missing = sorted(set(_SIDECAR_KEYS) - set(meta))
        if missing:
            raise EntityIndexError(f"{meta_path} lacks {', '.join(missing)}; {fix}")
        if len(meta["files"]) != 1:
            raise EntityIndexError(f"{meta_path} must list exactly its one index file; {fix}")
        if not path.is_file():
            raise EntityIndexError(f"{path} is missing (its sidecar {meta_path.name} exists)")
        # the one listed file is this index (a copy may rename the index and its sidecar together)
        (digest,) = meta["files"].values()
        verify_files(
            path.parent,
            {path.name: digest},
            error=EntityIndexError,
            fix="interrupted save or edited file? save the index again",
            manifest_name=f"its sidecar {meta_path.name}",
        )
        saved = IndexConfig.model_validate(meta["config"])
        if config is not None and config.factory == AUTO:  # search settings only: keep the factory that was built
            config = config.model_copy(update={"factory": saved.factory})
        if config is not None and config.factory != saved.factory:
            raise EntityIndexError(
                f"{path} holds a {saved.factory!r} index, not {config.factory!r}; build a new index instead"
            )
        config = config or saved
        interaction = str(meta["interaction"])
        metric = metric_for(interaction)
        try:
            index = _read_index(path, mmap=mmap)
        except RuntimeError as error:  # garbage whose hash was rewritten to match: FAISS cannot parse it
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise EntityIndexError(
                f"{path} is not a FAISS index FAISS can read ({first}); rebuild it (save the index again)"
            ) from None
        found = {"width": int(index.d), "num_entities": int(index.ntotal), "metric": int(index.metric_type)}
        expected = {"width": meta["width"], "num_entities": meta["num_entities"], "metric": metric}
        wrong = [
            f"{key} {expected[key]} in the sidecar but {found[key]}" for key in found if found[key] != expected[key]
        ]
        if wrong or meta["factory"] != saved.factory:
            what = "; ".join(wrong) or f"factory {meta['factory']!r} vs config {saved.factory!r}"
            raise EntityIndexError(f"{path} disagrees with its sidecar {meta_path.name} ({what}); save again")
        index, resources = _place(index, use_gpu=config.use_gpu)
        _apply_search_params(index, config=config, gpu=resources is not None)
        build_info = meta.get("build") if isinstance(meta.get("build"), dict) else {}
        loaded = cls(index, interaction=interaction, config=config, gpu_resources=resources, build_info=build_info)
        if model is not None:
            loaded._check_model(model)
        logger.debug("loaded %r from %s", loaded, path)
        return loaded

    def _check_model(self, model: KGEModel) -> None:
        problems = []
        if model.interaction_name.lower() != self.interaction:
            problems.append(f"interaction {model.interaction_name!r} vs {self.interaction!r}")
        if model.entity.shape[1] != self.width:
            problems.append(f"entity width {model.entity.shape[1]} vs {self.width}")
        if model.num_entities != self.num_entities:
            problems.append(f"{model.num_entities} entities vs {self.num_entities}")
        if problems:
            raise EntityIndexError(
                f"the model does not match this index ({'; '.join(problems)}); rebuild it with EntityIndex.build"
            )


def _read_index(path: Path, *, mmap: bool) -> Any:
    """``faiss.read_index``, memory-mapped (``IO_FLAG_MMAP_IFC``) when asked and this FAISS and index allow it."""
    flag = getattr(faiss, "IO_FLAG_MMAP_IFC", None)
    if mmap and flag is not None:
        try:
            return faiss.read_index(str(path), flag)
        except RuntimeError as error:
            logger.info("%s cannot be memory-mapped (%s); reading it into memory", path, str(error).splitlines()[0])
    return faiss.read_index(str(path))


def _filled_index(array: np.ndarray, *, factory: str, metric: int) -> Any:
    """A CPU FAISS index of ``factory`` trained on and filled with ``array``."""
    count, width = array.shape
    try:
        index = faiss.index_factory(width, factory, metric)
    except RuntimeError as error:
        raise EntityIndexError(f"FAISS cannot build factory {factory!r} for width {width}: {error}") from error
    _check_training_size(index, count=count, factory=factory)
    try:
        if not index.is_trained:
            index.train(array)
        index.add(array)
    except RuntimeError as error:
        raise EntityIndexError(
            f"FAISS failed to train/fill {factory!r} on {count} vectors of width {width}: {error}; "
            "use factory='Flat' (exact) or a factory with fewer/smaller codebooks"
        ) from error
    return index


def _recall_queries(array: np.ndarray, queries: Vectors | None, *, limit: int) -> np.ndarray:
    """At most ``limit`` query vectors: the given ones, or a fixed sample of ``array`` moved a little off its rows."""
    if queries is not None:
        chosen = _as_float32(queries, what="recall queries")[:limit]
        if chosen.shape[1] != array.shape[1]:
            raise EntityIndexError(f"recall queries have width {chosen.shape[1]}, the vectors {array.shape[1]}")
        return chosen
    rng = np.random.default_rng(0)
    rows = rng.choice(len(array), size=min(limit, len(array)), replace=False)
    noise = rng.standard_normal((len(rows), array.shape[1])).astype(np.float32)
    scale = float(np.std(array)) * 0.1 or 1.0
    return np.ascontiguousarray(array[rows] + scale * noise)


def _recall(index: Any, array: np.ndarray, queries: np.ndarray, *, metric: int) -> float:
    """Mean fraction of the exact top-10 (brute force, :func:`faiss.knn`) that ``index`` returns in its top-10."""
    k = min(RECALL_K, len(array))
    if len(queries) == 0:
        return 1.0
    _, truth = faiss.knn(queries, array, k, metric=metric)
    _, found = index.search(queries, k)
    hits = sum(len(set(t[t >= 0].tolist()) & set(f.tolist())) for t, f in zip(truth, found, strict=True))
    return hits / max(int((truth >= 0).sum()), 1)


def _check_training_size(index: Any, *, count: int, factory: str) -> None:
    """Refuse IVF list counts that ``count`` vectors cannot train; warn when training will be thin."""
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None or index.is_trained:
        return
    nlist = int(ivf.nlist)
    fits = count // MIN_VECTORS_PER_LIST
    instead = "factory='Flat' (exact; fine up to ~1M entities)"
    if fits >= 1:
        instead += f" or at most IVF{fits} (about {MIN_VECTORS_PER_LIST} vectors per list)"
    if count < nlist:
        raise EntityIndexError(
            f"{factory!r} asks for {nlist} IVF lists but there are only {count} entity vectors to train them; "
            f"use {instead}"
        )
    if count < nlist * MIN_VECTORS_PER_LIST:
        logger.warning(
            "%r: %d vectors for %d IVF lists (FAISS wants %d per list); recall may suffer, consider %s",
            factory,
            count,
            nlist,
            MIN_VECTORS_PER_LIST,
            instead,
        )


def _place(index: Any, *, use_gpu: bool | None) -> tuple[Any, Any | None]:
    """Move ``index`` to GPU 0 when asked (``True``) or possible (``None``); returns ``(index, resources)``."""
    if use_gpu is False or (use_gpu is None and not _gpu_available()):
        return index, None
    if not _gpu_available():
        raise EntityIndexError("use_gpu=True but FAISS has no GPU support or sees no GPU; install faiss-gpu")
    resources = faiss.StandardGpuResources()
    try:
        return faiss.index_cpu_to_gpu(resources, 0, index), resources
    except RuntimeError as error:
        if use_gpu:
            raise EntityIndexError(f"FAISS cannot move this index to the GPU: {error}; use use_gpu=False") from error
        logger.warning("keeping the index on the CPU: FAISS cannot move it to the GPU (%s)", error)
        return index, None


def _apply_search_params(index: Any, *, config: IndexConfig, gpu: bool) -> None:
    """Set ``nprobe``/``efSearch`` where the index has them (all others ignore the config)."""
    space = faiss.GpuParameterSpace() if gpu else faiss.ParameterSpace()
    space.initialize(index)
    names = {space.parameter_ranges.at(i).name for i in range(space.parameter_ranges.size())}
    nprobe = min(config.nprobe, _GPU_MAX_K) if gpu else config.nprobe
    wanted = {"nprobe": nprobe, "efSearch": config.ef_search, "quantizer_efSearch": config.ef_search}
    for name, value in wanted.items():
        if name in names:
            space.set_index_parameter(index, name, value)
