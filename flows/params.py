"""Flow parameters as pydantic models: validated by Prefect and shown as a form in its UI."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from evergraph.flows.runners import TaskRunnerName
from evergraph.kg.engine.config import LKGEConfig, ModelConfig, RunConfig, TrainConfig
from evergraph.kg.store.home import EvergraphHome
from evergraph.kg.store.index import IndexConfig
from evergraph.registry.config import RegistryConfig


class PipelineConfig(BaseModel):
    """Everything ``lifelong_pipeline`` needs beyond the source, strategy and model names."""

    model_config = ConfigDict(extra="forbid")

    home: str | None = Field(
        None, description="Evergraph home (MLflow store, runs, bundles); default $EVERGRAPH_HOME or ./.evergraph"
    )
    protocol: str = Field("all-entities", description="evaluation protocol: all-entities | lkge-paper")
    dim: int = Field(200, gt=0, description="embedding dimension")
    train: TrainConfig = Field(default_factory=TrainConfig, description="training and early stopping")
    lkge: LKGEConfig = Field(default_factory=LKGEConfig, description="LKGE loss weights and switches")
    index: IndexConfig = Field(default_factory=IndexConfig, description="FAISS entity index (factory string)")
    registry: RegistryConfig = Field(default_factory=RegistryConfig, description="MLflow tracking and promotion gate")
    show_progress: bool = Field(False, description="rich progress bars in the flow's terminal")
    task_runner: TaskRunnerName = Field(
        "threads", description="threads (one machine) | dask | ray (need prefect-dask / prefect-ray)"
    )
    max_workers: int = Field(4, gt=0, description="threads of the thread-pool task runner")

    def run_config(self, *, strategy: str, model: str) -> RunConfig:
        """The engine configuration for ``strategy`` and ``model``."""
        return RunConfig(
            strategy=strategy,
            protocol=self.protocol,
            model=ModelConfig(name=model, dim=self.dim),
            train=self.train,
            lkge=self.lkge,
        )

    def evergraph_home(self) -> EvergraphHome:
        return EvergraphHome.resolve(self.home)


def lineage_name(*, source: str | Path, config: RunConfig) -> str:
    """A stable, readable key for one source + engine configuration, e.g. ``example-data-lkge-transe-1a2b3c4d``.

    Every snapshot of a lineage continues from the previous one's model; changing the source path or any
    option that changes results starts a new lineage (and new model versions).
    """
    resolved = str(Path(source).expanduser().resolve())
    digest = hashlib.sha256(f"{resolved}\n{config.checksum()}".encode()).hexdigest()[:8]
    stem = re.sub(r"[^A-Za-z0-9]+", "-", Path(resolved).name).strip("-").lower() or "kg"
    return f"{stem}-{config.strategy}-{config.model.name}-{digest}"
