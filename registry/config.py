"""Where MLflow lives and how promotion is judged: :class:`RegistryConfig`, plain pydantic, no MLflow import."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evergraph.kg.settings import load_settings
from evergraph.kg.store.home import EvergraphHome

ARTIFACTS_DIR = "mlartifacts"
"""Artifacts of a SQLite store go to this directory beside the database file."""


@dataclass(frozen=True)
class StoreLocation:
    """A resolved store: the tracking (= registry) URI and where new experiments put their artifacts.

    ``artifact_location`` is a ``file://`` URI for SQLite stores and ``None`` for servers (they decide).
    """

    tracking_uri: str
    artifact_location: str | None


class RegistryConfig(BaseModel):
    """MLflow tracking, the model registry and the promotion gate. Every field has a default."""

    model_config = ConfigDict(extra="forbid")

    tracking_uri: str | None = Field(
        None,
        min_length=1,
        description="MLflow tracking and registry URI; default None = sqlite:///HOME/mlflow.db of the Evergraph home",
    )
    registered_model: str = Field(
        "evergraph-embeddings", min_length=1, description="registered model name; default evergraph-embeddings"
    )
    experiment: str = Field("evergraph", min_length=1, description="experiment holding the runs; default evergraph")
    tolerance: float = Field(
        0.05,
        ge=0,
        description="allowed drop of the mean MRR over earlier test sets (both versions ranked against the "
        "champion's entities) before a gate fails; default 0.05",
    )
    mlflow_ui_url: str | None = Field(
        "http://127.0.0.1:5000",
        description="base URL of the MLflow UI that links point to; default http://127.0.0.1:5000 (what "
        "`evergraph up` starts); None = no links",
    )

    @field_validator("mlflow_ui_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else None

    def location(self, home: EvergraphHome | None = None) -> StoreLocation:
        """Resolve the store: :attr:`tracking_uri`, else ``$MLFLOW_TRACKING_URI``, else the SQLite file of
        ``home`` (default :meth:`EvergraphHome.resolve`, i.e. ``$EVERGRAPH_HOME`` or ``./.evergraph``).

        A SQLite store keeps its artifacts in ``mlartifacts/`` beside the database file (for the home's store
        that is ``HOME/mlartifacts``), so artifacts never land in the working directory.
        """
        uri = self.tracking_uri or load_settings().mlflow_tracking_uri or (home or EvergraphHome.resolve()).tracking_uri
        return StoreLocation(tracking_uri=uri, artifact_location=sqlite_artifact_location(uri))


def sqlite_artifact_location(tracking_uri: str) -> str | None:
    """``file://`` URI of ``mlartifacts/`` beside the database of a ``sqlite:///PATH`` URI; None for other URIs
    (servers, in-memory SQLite)."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    database = tracking_uri[len(prefix) :].split("?", 1)[0]
    if not database or database == ":memory:":
        return None
    return (Path(database).expanduser().resolve().parent / ARTIFACTS_DIR).as_uri()
