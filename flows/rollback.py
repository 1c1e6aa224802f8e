"""Rollback: move the ``champion`` alias (and the serving bundle) back to an earlier model version."""

from __future__ import annotations

from typing import Any

from prefect import flow

from evergraph.registry.config import RegistryConfig
from evergraph.tasks.promote import rollback_version


@flow(name="evergraph-rollback", flow_run_name="rollback-to-{version}")
def rollback_champion(version: str, home: str | None = None, registry: RegistryConfig | None = None) -> dict[str, Any]:
    """Serve ``version`` again (its bundle is rebuilt from its run directory when missing) and point
    ``champion`` at it. ``home`` defaults to $EVERGRAPH_HOME or ./.evergraph; ``registry`` to
    ``RegistryConfig()``."""
    return rollback_version(home=home, registry=(registry or RegistryConfig()).model_dump(), version=str(version))
