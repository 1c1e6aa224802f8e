"""The MLflow side shared by tracking and the registry: one client bound to one store, and its experiment.

Only :class:`mlflow.MlflowClient` with explicit URIs is used, never the global ``mlflow.set_tracking_uri``
state, so two stores (or two tests) in one process never see each other.
"""

from __future__ import annotations

import logging
import re
import threading
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


_PREPARING: dict[str, threading.Thread] = {}
_PREPARING_LOCK = threading.Lock()


def prepare_store(*, config: RegistryConfig | None = None, home: EvergraphHome | None = None) -> bool:
    """Start opening the SQLite store of ``config`` (default ``RegistryConfig()``) and ``home`` in a background
    thread of this process: a new home's database is created (MLflow's schema migrations take seconds) and
    MLflow's map of installed packages (read when a pyfunc model is saved) is built while the caller waits on
    something else, e.g. Prefect's API starting. :meth:`Store.open` of the same store waits for it. Nothing is
    written but the empty database; a failure is left for the first real use to report. Returns whether a thread
    was started (only for ``sqlite:///`` files; servers need no preparation)."""
    uri = (config or RegistryConfig()).location(home).tracking_uri
    if sqlite_artifact_location(uri) is None:
        return False

    def _prepare() -> None:
        try:
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)  # creates the tracking tables
            client.search_registered_models(max_results=1)  # the registry's store, on the same tables
            from mlflow.utils.requirements_utils import _init_packages_to_modules_map

            _init_packages_to_modules_map()  # MLflow's own cache (private; a missing name only costs the time)
        except Exception as error:  # noqa: BLE001 - the pipeline's first registry call reports a real problem
            logger.debug("preparing the MLflow store %s failed: %s", uri, error)

    # not a daemon: a process ending early (Prefect failed to start) waits for the migrations instead of cutting
    # them off half-way
    thread = threading.Thread(target=_prepare, name="evergraph-prepare-mlflow", daemon=False)
    with _PREPARING_LOCK:
        if uri in _PREPARING:
            return False
        _PREPARING[uri] = thread
    thread.start()
    return True


def _wait_prepared(uri: str) -> None:
    """Wait for :func:`prepare_store` of ``uri`` when one runs (two SQLite schema creations must not race)."""
    with _PREPARING_LOCK:
        thread = _PREPARING.get(uri)
    if thread is not None and thread is not threading.current_thread():
        thread.join()


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
