"""The model registry: one registered model, one version per (lineage, snapshot), aliases for promotion.

Aliases only (no stages): ``champion`` is the version serving uses, ``challenger`` the latest version that
failed its gate. Every version carries the tags ``evergraph.lineage``, ``evergraph.snapshot``,
``evergraph.content_hash`` and (except a lineage's first) ``evergraph.parent_version``; after a gate,
``evergraph.gate`` = ``passed`` | ``failed``, the gate's Markdown as the version description and as
``gate.md`` in the version's run.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, ErrorCode
from pydantic import BaseModel, ConfigDict, Field

from evergraph.kg.errors import RegistryError
from evergraph.kg.store.home import EvergraphHome
from evergraph.registry._store import (
    TAG_CONTENT_HASH,
    TAG_GATE,
    TAG_LINEAGE,
    TAG_PARENT,
    TAG_SNAPSHOT,
    Store,
    check_lineage,
    error_code,
)
from evergraph.registry.config import RegistryConfig
from evergraph.registry.gate import GateDecision
from evergraph.registry.manifest import verify_manifest
from evergraph.registry.pyfunc import KNOWLEDGE_DIR
from evergraph.registry.tracking import MODEL_DIR, PLOTS, PLOTS_DIR

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"


class VersionInfo(BaseModel):
    """One registered model version, as Evergraph tagged it."""

    model_config = ConfigDict(frozen=True)

    version: str = Field(description="MLflow model version number, as a string")
    run_id: str = Field(description="the MLflow run holding the version's artifacts")
    snapshot: int = Field(description="the snapshot the version learned last")
    lineage: str = Field(description="the engine run directory's history the version belongs to")
    content_hash: str = Field(description="content hash of the snapshot's data")
    parent_version: str | None = Field(None, description="the lineage's previous version (None: first)")
    aliases: tuple[str, ...] = Field((), description="aliases pointing at this version (champion, challenger)")
    gate: str | None = Field(None, description="passed | failed after a gate, else None")
    run_url: str | None = Field(None, description="link to the run in the MLflow UI (RegistryConfig.mlflow_ui_url)")


def _version_str(version: str | int) -> str:
    text = str(version).strip().lstrip("v")
    if not text.isdigit():
        raise RegistryError(f"{version!r} is not a model version number; give a number such as 3")
    return str(int(text))


class ModelRegistry:
    """The registered model ``config.registered_model`` in the store of ``config`` and ``home``.

    ``config`` defaults to ``RegistryConfig()``, ``home`` to ``EvergraphHome.resolve()``; ``tracking_uri``
    (default None) overrides ``config.tracking_uri``. Nothing is created until something is written.
    """

    def __init__(
        self,
        *,
        config: RegistryConfig | None = None,
        home: EvergraphHome | None = None,
        tracking_uri: str | None = None,
    ) -> None:
        self._store = Store.open(config=config, home=home, tracking_uri=tracking_uri)
        self.config = self._store.config
        self.name = self.config.registered_model

    @property
    def tracking_uri(self) -> str:
        """The tracking (and registry) URI in use."""
        return self._store.tracking_uri

    @property
    def model_name(self) -> str:
        """The registered model's name (``RegistryConfig.registered_model``)."""
        return self.name

    @property
    def client(self) -> MlflowClient:
        """The MLflow client bound to this store (for anything not wrapped here, and for :func:`log_snapshot_run`)."""
        return self._store.client

    @property
    def experiment_id(self) -> str:
        """The id of ``RegistryConfig.experiment``, created on first use with the store's artifact location."""
        return self._store.experiment_id

    def run_url(self, run_id: str) -> str | None:
        """Link to ``run_id`` in the MLflow UI; None without ``RegistryConfig.mlflow_ui_url``."""
        return self._store.run_url(run_id)

    def plot_urls(self, run_id: str) -> dict[str, str]:
        """Links to the plots of a snapshot run (``forgetting_matrix.png``, ``stream_mrr.png``): through the
        MLflow UI when ``RegistryConfig.mlflow_ui_url`` is set, else their artifact URIs (``file://`` locally)."""
        return {name: self._store.artifact_url(run_id, f"{PLOTS_DIR}/{name}") for name in PLOTS}

    def run_content_hash(self, run_id: str) -> str:
        """The ``evergraph.content_hash`` tag of a snapshot run (:class:`RegistryError` when it has none)."""
        tags = self._store.client.get_run(run_id).data.tags
        if TAG_CONTENT_HASH not in tags:
            raise RegistryError(f"run {run_id} is not an Evergraph snapshot run; log it with log_snapshot_run")
        return tags[TAG_CONTENT_HASH]

    # -- reading ------------------------------------------------------------------------------------------

    def _aliases(self) -> dict[str, str]:
        try:
            model = self._store.client.get_registered_model(self.name)
        except MlflowException as error:
            if error_code(error) == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
                return {}
            raise
        return {alias: str(version) for alias, version in model.aliases.items()}

    def _info(self, version: ModelVersion, aliases: dict[str, str] | None = None) -> VersionInfo | None:
        tags = version.tags or {}
        if TAG_SNAPSHOT not in tags or TAG_LINEAGE not in tags:
            return None
        aliases = self._aliases() if aliases is None else aliases
        number = str(version.version)
        return VersionInfo(
            version=number,
            run_id=version.run_id,
            snapshot=int(tags[TAG_SNAPSHOT]),
            lineage=tags[TAG_LINEAGE],
            content_hash=tags.get(TAG_CONTENT_HASH, ""),
            parent_version=tags.get(TAG_PARENT) or None,
            aliases=tuple(sorted(a for a, v in aliases.items() if v == number)),
            gate=tags.get(TAG_GATE),
            run_url=self.run_url(version.run_id),
        )

    def _search(self, query: str = "") -> list[ModelVersion]:
        filter_string = f"name = '{self.name}'" + (f" AND {query}" if query else "")
        found: list[ModelVersion] = []
        token = None
        while True:
            page = self._store.client.search_model_versions(filter_string, page_token=token)
            found.extend(page)
            token = page.token
            if not token:
                return sorted(found, key=lambda v: int(v.version))

    def get_version(self, version: str | int) -> VersionInfo:
        """The version numbered ``version``; :class:`RegistryError` listing the known ones when it does not exist."""
        number = _version_str(version)
        try:
            found = self._store.client.get_model_version(self.name, number)
        except MlflowException as error:
            if error_code(error) != ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
                raise
            known = ", ".join(v.version for v in self.versions()) or "none"
            raise RegistryError(
                f"model {self.name!r} has no version {number} (known versions: {known}); pick one of those"
            ) from None
        info = self._info(found)
        if info is None:
            raise RegistryError(
                f"version {number} of {self.name!r} was not registered by Evergraph (no evergraph.* tags); "
                "pick a version registered with ModelRegistry.register"
            )
        return info

    def find_version(self, *, lineage: str, snapshot: int) -> VersionInfo | None:
        """The version registered for ``lineage`` and ``snapshot`` (the oldest if several), or None."""
        query = f"tags.`{TAG_LINEAGE}` = '{check_lineage(lineage)}' AND tags.`{TAG_SNAPSHOT}` = '{int(snapshot)}'"
        found = self._search(query)
        return self._info(found[0]) if found else None

    def versions(self, *, lineage: str | None = None) -> list[VersionInfo]:
        """Every Evergraph version (of ``lineage`` only, when given; default None = all), oldest first."""
        query = f"tags.`{TAG_LINEAGE}` = '{check_lineage(lineage)}'" if lineage is not None else ""
        aliases = self._aliases()
        infos = (self._info(v, aliases) for v in self._search(query))
        return [info for info in infos if info is not None]

    def get_alias(self, alias: str) -> VersionInfo | None:
        """The version ``alias`` points at, or None when the alias (or the registered model) does not exist."""
        number = self._aliases().get(alias)
        return None if number is None else self.get_version(version=number)

    def champion(self) -> VersionInfo | None:
        """The version serving uses (alias ``champion``), or None before the first promotion."""
        return self.get_alias(alias=CHAMPION)

    def challenger(self) -> VersionInfo | None:
        """The latest version that failed its gate (alias ``challenger``), or None."""
        return self.get_alias(alias=CHALLENGER)

    # -- writing ------------------------------------------------------------------------------------------

    def _ensure_model(self) -> None:
        try:
            self._store.client.create_registered_model(
                self.name, description="Evergraph knowledge-graph embeddings, one version per lineage snapshot"
            )
        except MlflowException as error:
            if error_code(error) != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise

    def register(
        self,
        *,
        run_id: str,
        lineage: str,
        snapshot: int,
        content_hash: str,
        parent_version: str | int | None = None,
    ) -> VersionInfo:
        """Register ``run_id`` (from :func:`log_snapshot_run`) as a new version, its source the pyfunc model
        ``knowledge/`` of the run (:func:`evergraph.registry.pyfunc.log_knowledge_model` logs it next),
        tagged with ``lineage``, ``snapshot``, ``content_hash`` and ``parent_version`` (default None: the
        lineage's first version). Idempotent: the existing version of ``lineage`` + ``snapshot`` is returned
        as it is; one with a different content hash raises :class:`RegistryError`.
        """
        existing = self.find_version(lineage=lineage, snapshot=snapshot)
        if existing is not None:
            if existing.content_hash != content_hash:
                raise RegistryError(
                    f"version {existing.version} already holds {lineage} snapshot {snapshot} with content hash "
                    f"{existing.content_hash[:12]}..., not {content_hash[:12]}...; use a new lineage name"
                )
            if existing.run_id != run_id:
                logger.warning(
                    "%s snapshot %d is already version %s (run %s); not registering run %s",
                    lineage, snapshot, existing.version, existing.run_id, run_id,
                )  # fmt: skip
            return existing
        self._ensure_model()
        tags = {TAG_LINEAGE: lineage, TAG_SNAPSHOT: str(int(snapshot)), TAG_CONTENT_HASH: content_hash}
        if parent_version is not None:
            tags[TAG_PARENT] = _version_str(parent_version)
        created = self._store.client.create_model_version(
            self.name,
            source=f"runs:/{run_id}/{KNOWLEDGE_DIR}",
            run_id=run_id,
            tags=tags,
            run_link=self.run_url(run_id),
        )
        logger.info("registered %s snapshot %d as %s version %s", lineage, snapshot, self.name, created.version)
        info = self._info(created)
        assert info is not None
        return info

    def set_alias(self, *, alias: str, version: str | int) -> VersionInfo:
        """Point ``alias`` at ``version`` (which must exist); returns the version."""
        info = self.get_version(version=version)
        self._store.client.set_registered_model_alias(self.name, alias, info.version)
        return self.get_version(version=info.version)

    def _delete_alias(self, alias: str) -> None:
        self._store.client.delete_registered_model_alias(self.name, alias)

    def promote(self, version: str | int, decision: GateDecision) -> VersionInfo:
        """Record a gate ``decision`` for ``version`` and move the aliases.

        Passed: ``champion`` points at the version (and ``challenger`` is dropped if it pointed there too).
        Failed: ``challenger`` points at it; the champion stays. Either way the decision's Markdown is logged
        as ``gate.md`` in the version's run and as the version description, and ``evergraph.gate`` is set.
        """
        info = self.get_version(version=version)
        previous = self.champion()
        header = (
            f"# {self.name} version {info.version} ({info.lineage}, snapshot {info.snapshot})\n\n"
            f"Champion before the gate: {'none' if previous is None else 'version ' + previous.version}.\n\n"
        )
        markdown = header + decision.to_markdown()
        client = self._store.client
        with tempfile.TemporaryDirectory(prefix="evergraph-gate-") as tmp:
            path = Path(tmp) / "gate.md"
            path.write_text(markdown, encoding="utf-8")
            client.log_artifact(info.run_id, str(path))
        client.update_model_version(self.name, info.version, description=markdown)
        client.set_model_version_tag(self.name, info.version, TAG_GATE, "passed" if decision.promote else "failed")
        if decision.promote:
            client.set_registered_model_alias(self.name, CHAMPION, info.version)
            if self._aliases().get(CHALLENGER) == info.version:
                self._delete_alias(CHALLENGER)
            logger.info("version %s is the champion (was %s)", info.version, previous and previous.version)
        else:
            client.set_registered_model_alias(self.name, CHALLENGER, info.version)
            logger.info("version %s failed its gate and is the challenger: %s", info.version, decision.reasons)
        return self.get_version(version=info.version)

    def rollback(self, version: str | int) -> VersionInfo:
        """Point ``champion`` back at an existing ``version`` (:class:`RegistryError` naming the known versions
        when it does not exist). Returns the new champion."""
        info = self.get_version(version=version)
        previous = self.champion()
        if info.gate == "failed":
            logger.warning("rolling back to version %s, which failed its gate", info.version)
        self._store.client.set_registered_model_alias(self.name, CHAMPION, info.version)
        logger.info("champion rolled back from %s to %s", previous and previous.version, info.version)
        return self.get_version(version=info.version)

    # -- artifacts ----------------------------------------------------------------------------------------

    def download(self, version: str | int, dst: Path | str) -> Path:
        """Download the ``model/`` files of ``version`` into the directory ``dst`` (created; must be missing or
        empty) and verify every sha256 of its manifest. Returns ``dst``.

        The files are fetched and checked in a temporary directory beside ``dst`` and moved into place only
        when they all match, so ``dst`` never holds a partial or tampered model; a mismatch raises
        :class:`~evergraph.kg.errors.ManifestError`.
        """
        info = self.get_version(version=version)
        dst = Path(dst)
        if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
            raise RegistryError(f"{dst} already exists and is not an empty directory; remove it or pick another dst")
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
        try:
            local = Path(self._store.client.download_artifacts(info.run_id, MODEL_DIR, str(tmp)))
            verify_manifest(local)
            if dst.exists():
                dst.rmdir()
            local.replace(dst)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        logger.info("downloaded version %s to %s (manifest verified)", info.version, dst)
        return dst

    def version_metrics(self, version: str | int) -> dict[str, Any]:
        """The ``metrics.json`` entry of the snapshot ``version`` learned (``stream``, ``per_test_set``, ...)."""
        info = self.get_version(version=version)
        with tempfile.TemporaryDirectory(prefix="evergraph-metrics-") as tmp:
            path = self._store.client.download_artifacts(info.run_id, f"{MODEL_DIR}/metrics.json", tmp)
            return json.loads(Path(path).read_text(encoding="utf-8"))
