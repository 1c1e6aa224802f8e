"""Flow parameters as pydantic models: validated by Prefect and shown as a form in its UI."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from evergraph.flows.runners import TaskRunnerName
from evergraph.kg.engine.config import RunConfig
from evergraph.kg.store.home import EvergraphHome
from evergraph.kg.store.index import IndexConfig
from evergraph.registry.config import RegistryConfig

_FLAT_ENGINE_KEYS = {"protocol", "dim", "train", "lkge"}


class PipelineConfig(BaseModel):
    """Everything ``lifelong_pipeline`` needs beyond the source, strategy and model names."""

    model_config = ConfigDict(extra="forbid")

    home: str | None = Field(
        None, description="Evergraph home (MLflow store, runs, bundles); default $EVERGRAPH_HOME or ./.evergraph"
    )
    engine: RunConfig = Field(
        default_factory=RunConfig,
        description="the engine's configuration (protocol, model dim/init_scale, train, lkge) with the engine's own "
        "defaults; the flow's strategy and model parameters set its names",
    )
    index: IndexConfig = Field(default_factory=IndexConfig, description="FAISS entity index (factory string)")
    registry: RegistryConfig = Field(default_factory=RegistryConfig, description="MLflow tracking and promotion gate")
    show_progress: bool = Field(False, description="rich progress bars in the flow's terminal")
    promote_anyway: bool = Field(
        False,
        description="promote a new version even when the gate cannot compare it with the champion or it fails "
        "(logged and recorded in the gate artifact)",
    )
    task_runner: TaskRunnerName = Field(
        "threads", description="threads (one machine) | dask | ray (need prefect-dask / prefect-ray)"
    )
    max_workers: int = Field(
        4, gt=0, description="threads of the thread-pool task runner (dask without an address: local worker processes)"
    )
    task_runner_address: str | None = Field(
        None,
        description="the cluster the dask / ray runner submits to (tcp://scheduler:8786, ray://head:10001); default "
        "none: a local cluster",
    )
    quarantine: Literal["off", "flag", "hold"] = Field(
        "flag",
        description="plausibility check of each snapshot's new facts against the champion: flag (default) learns "
        "everything and reports suspects (Prefect table + MLflow artifact), hold also keeps the suspects out of "
        "training and out of the known facts until a person releases or rejects them (`evergraph quarantine`), "
        "off skips the check",
    )
    torch_threads: int | None = Field(
        None, gt=0, description="torch threads of the flow's process (default: torch's choice; 1 for small graphs)"
    )

    @model_validator(mode="before")
    @classmethod
    def _engine_keys_at_top(cls, data: Any) -> Any:
        """Parameters saved before ``engine`` existed (``protocol``, ``dim``, ``train``, ``lkge`` at the top) are
        moved into ``engine``; giving one both ways is refused."""
        if not isinstance(data, dict) or not _FLAT_ENGINE_KEYS & set(data):
            return data
        data = dict(data)
        engine = _plain(data.get("engine", {}))
        engine["model"] = _plain(engine.get("model", {}))
        for key in sorted(_FLAT_ENGINE_KEYS & set(data)):
            target = engine["model"] if key == "dim" else engine
            if key in target:
                raise ValueError(f"{key} is given twice (at the top and in engine); keep the one in engine")
            target[key] = data.pop(key)
        data["engine"] = engine
        return data

    def run_config(self, *, strategy: str | None = None, model: str | None = None) -> RunConfig:
        """The engine configuration with ``strategy`` and ``model`` names (default: those of :attr:`engine`),
        validated against their registries."""
        data = self.engine.model_dump()
        if strategy is not None:
            data["strategy"] = strategy
        if model is not None:
            data["model"]["name"] = model
        return RunConfig.model_validate(data)

    def evergraph_home(self) -> EvergraphHome:
        return EvergraphHome.resolve(self.home)


def _plain(value: Any) -> dict[str, Any]:
    return value.model_dump(exclude_unset=True) if isinstance(value, BaseModel) else dict(value)


def lineage_name(*, source: str | Path, config: RunConfig) -> str:
    """A stable, readable key for one source + engine configuration, e.g. ``example-data-lkge-transe-1a2b3c4d``.

    Every snapshot of a lineage continues from the previous one's model; changing the source path or any
    option that changes results starts a new lineage (and new model versions).
    """
    resolved = str(Path(source).expanduser().resolve())
    digest = hashlib.sha256(f"{resolved}\n{config.checksum()}".encode()).hexdigest()[:8]
    stem = re.sub(r"[^A-Za-z0-9]+", "-", Path(resolved).name).strip("-").lower() or "kg"
    return f"{stem}-{config.strategy}-{config.model.name}-{digest}"
