"""MLflow tracking, the model registry and the promotion gate for Evergraph runs.

The public API is re-exported here. The MLflow-backed names (:class:`ModelRegistry`, :class:`VersionInfo`,
:func:`log_snapshot_run`) are imported on first use, so ``registry.decide`` or ``registry.verify_manifest``
(e.g. in serving) do not load MLflow.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from evergraph.kg.errors import ManifestError, RegistryError
from evergraph.registry.config import RegistryConfig, StoreLocation
from evergraph.registry.gate import GateDecision, decide
from evergraph.registry.manifest import verify_manifest
from evergraph.registry.plots import forgetting_matrix_png, stream_mrr_png

if TYPE_CHECKING:
    from evergraph.registry._store import prepare_store
    from evergraph.registry.models import CHALLENGER, CHAMPION, ModelRegistry, VersionInfo
    from evergraph.registry.tracking import log_snapshot_run, open_snapshot_run

_LAZY = {
    "CHALLENGER": "evergraph.registry.models",
    "CHAMPION": "evergraph.registry.models",
    "ModelRegistry": "evergraph.registry.models",
    "VersionInfo": "evergraph.registry.models",
    "log_snapshot_run": "evergraph.registry.tracking",
    "open_snapshot_run": "evergraph.registry.tracking",
    "prepare_store": "evergraph.registry._store",
}

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "GateDecision",
    "ManifestError",
    "ModelRegistry",
    "RegistryConfig",
    "RegistryError",
    "StoreLocation",
    "VersionInfo",
    "decide",
    "forgetting_matrix_png",
    "log_snapshot_run",
    "open_snapshot_run",
    "prepare_store",
    "stream_mrr_png",
    "verify_manifest",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'registry' has no attribute {name!r}")
