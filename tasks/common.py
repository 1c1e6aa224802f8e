"""What every Evergraph task shares: retry rules and the registry/home objects built from parameters."""

from __future__ import annotations

import logging
from typing import Any

from prefect import Task
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from evergraph.kg.errors import EvergraphError
from evergraph.kg.store.home import EvergraphHome
from evergraph.registry import ModelRegistry, RegistryConfig

logger = logging.getLogger(__name__)

IO_RETRIES = 2
"""Retries of tasks that touch files, the MLflow store or FAISS (transient I/O failures)."""
IO_RETRY_DELAYS = [2.0, 10.0]
"""Back-off between those retries, in seconds."""


def retry_unless_final(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry transient failures only: an :class:`~evergraph.kg.errors.EvergraphError` (bad data, changed history, a
    config that does not fit a run) is final, and retrying it would only repeat the same message."""
    try:
        state.result()
    except EvergraphError as error:
        logger.error(  # the error rides along, so the console can leave out what the command prints itself
            "%s failed with a final error, not retrying: %s", task_run.name, error, extra={"evergraph_error": error}
        )
        return False
    except Exception:  # noqa: BLE001 - anything else may be transient
        return True
    return True


def open_registry(*, home: str | None, registry: dict[str, Any] | RegistryConfig) -> ModelRegistry:
    """The model registry for a home and a registry configuration (dicts come from flow parameters)."""
    config = registry if isinstance(registry, RegistryConfig) else RegistryConfig.model_validate(registry)
    return ModelRegistry(config=config, home=EvergraphHome.resolve(home))
