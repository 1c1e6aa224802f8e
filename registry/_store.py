"""The MLflow side shared by tracking and the registry: one client bound to one store, and its experiment.

Only :class:`mlflow.MlflowClient` with explicit URIs is used, never the global ``mlflow.set_tracking_uri``
state, so two stores (or two tests) in one process never see each other.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import threading
import time
from urllib.parse import quote

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

from evergraph.kg.errors import RegistryError
from evergraph.kg.store.home import EvergraphHome
from evergraph.registry.config import RegistryConfig, sqlite_artifact_location

logger = logging.getLogger(__name__)

TAG_LINEAGE = "evergraph.lineage"
TAG_SNAPSHOT = "evergraph.snapshot"
TAG_CONTENT_HASH = "evergraph.content_hash"
TAG_PARENT = "evergraph.parent_version"
TAG_GATE = "evergraph.gate"

_LINEAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_lineage(lineage: str) -> str:
    """A lineage name must be ``[A-Za-z0-9][A-Za-z0-9._-]*`` (it goes into run names and search filters)."""
    if not _LINEAGE.match(lineage):
        raise RegistryError(
            f"lineage {lineage!r} is not a valid name; use letters, digits, '.', '_' and '-' (e.g. example-lkge)"
        )
    return lineage


_PREPARE_CODE = """
import sys
from mlflow import MlflowClient

client = MlflowClient(tracking_uri=sys.argv[1], registry_uri=sys.argv[1])  # creates the tracking tables
client.search_registered_models(max_results=1)  # the registry's store, on the same tables
"""
_PREPARING: dict[str, subprocess.Popen[bytes]] = {}
_PREPARING_LOCK = threading.Lock()


def prepare_store(*, config: RegistryConfig | None = None, home: EvergraphHome | None = None) -> bool:
    """Start creating the SQLite database of the store of ``config`` (default ``RegistryConfig()``) and ``home`` in
    a separate process (MLflow's schema migrations of a new home take seconds) while the caller waits on something
    else, e.g. Prefect's API starting; :meth:`Store.open` of the same store in this process waits for it. A process,
    not a thread: importing MLflow's SQLAlchemy modules beside another thread importing them (Prefect's server does)
    can fail half-way. Nothing is written but the empty schema; a failure there is left for the first real use to
    report. Returns whether it was started (only for ``sqlite:///`` files; servers need no preparation)."""
    uri = (config or RegistryConfig()).location(home).tracking_uri
    if sqlite_artifact_location(uri) is None:
        return False
    with _PREPARING_LOCK:
        if uri in _PREPARING:
            return False
        _PREPARING[uri] = subprocess.Popen(  # noqa: S603 - this interpreter, fixed code, the store's own URI
            [sys.executable, "-c", _PREPARE_CODE, uri], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    return True


def _wait_prepared(uri: str) -> None:
    """Wait for :func:`prepare_store` of ``uri`` when it runs (two SQLite schema creations must not race)."""
    with _PREPARING_LOCK:
        process = _PREPARING.get(uri)
    if process is not None and process.poll() is None:
        started = time.monotonic()
        process.wait()
        logger.debug("waited %.1fs for the MLflow store %s to be made", time.monotonic() - started, uri)


def error_code(error: MlflowException) -> str:
    return ErrorCode.Name(error.error_code) if isinstance(error.error_code, int) else str(error.error_code)


class Store:
    """An MLflow client bound to one tracking/registry store, the experiment runs go to, and the
    :class:`RegistryConfig` it came from. Build it with :meth:`open`."""

    def __init__(
        self,
        *,
        config: RegistryConfig,
        client: MlflowClient,
        artifact_location: str | None,
        experiment_id: str | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.tracking_uri: str = client.tracking_uri
        self.artifact_location = artifact_location
        self._experiment_id = experiment_id

    @classmethod
    def open(
        cls,
        *,
        config: RegistryConfig | None = None,
        home: EvergraphHome | None = None,
        tracking_uri: str | None = None,
        client: MlflowClient | None = None,
        experiment_id: str | None = None,
    ) -> Store:
        """The store of ``client`` when given (default None), else of ``config`` (default ``RegistryConfig()``)
        and ``home`` (see :meth:`RegistryConfig.location`), ``tracking_uri`` (default None) overriding
        ``config.tracking_uri``. ``experiment_id`` (default None = ``config.experiment``, created on first use)."""
        config = config or RegistryConfig()
        if client is None:
            if tracking_uri is not None:
                config = config.model_copy(update={"tracking_uri": tracking_uri})
            location = config.location(home)
            _wait_prepared(location.tracking_uri)
            client = MlflowClient(tracking_uri=location.tracking_uri, registry_uri=location.tracking_uri)
        artifacts = sqlite_artifact_location(client.tracking_uri)
        return cls(config=config, client=client, artifact_location=artifacts, experiment_id=experiment_id)

    @property
    def experiment_id(self) -> str:
        """The id of ``config.experiment``, created on first use (with the store's artifact location)."""
        if self._experiment_id is None:
            self._experiment_id = self._experiment()
        return self._experiment_id

    def _experiment(self) -> str:
        name = self.config.experiment
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return self.client.create_experiment(name, artifact_location=self.artifact_location)
            except MlflowException as error:  # created concurrently by another process
                if error_code(error) != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                    raise
                experiment = self.client.get_experiment_by_name(name)
                assert experiment is not None
        if experiment.lifecycle_stage != "active":
            raise RegistryError(
                f"MLflow experiment {name!r} in {self.tracking_uri} is deleted; restore it "
                "(mlflow experiments restore) or set RegistryConfig.experiment to another name"
            )
        return experiment.experiment_id

    def run_url(self, run_id: str) -> str | None:
        """Link to a run in the MLflow UI at ``config.mlflow_ui_url``; None when no UI URL is configured."""
        if not self.config.mlflow_ui_url:
            return None
        return f"{self.config.mlflow_ui_url}/#/experiments/{self.experiment_id}/runs/{run_id}"

    def artifact_url(self, run_id: str, path: str) -> str:
        """Link to one artifact of a run: through the MLflow UI's ``get-artifact`` endpoint when
        ``config.mlflow_ui_url`` is set, else the artifact's own URI (``file://...`` for a SQLite store)."""
        if self.config.mlflow_ui_url:
            return f"{self.config.mlflow_ui_url}/get-artifact?path={quote(path, safe='')}&run_uuid={run_id}"
        return f"{self.client.get_run(run_id).info.artifact_uri.rstrip('/')}/{path}"
