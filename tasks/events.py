"""Prefect events on champion changes, so automations can react (reload a cache, notify, run a smoke test).

=====================================  ========================================================================
event                                  when
=====================================  ========================================================================
``evergraph.champion.promoted``        the gate made a new version champion (its bundle is already served)
``evergraph.champion.rolled-back``     ``evergraph rollback`` served an earlier version again
=====================================  ========================================================================

The resource is the model version (``evergraph.model.<registered model>.<version>``); the payload holds the
version, snapshot, lineage, previous champion and (promotion) the gate's reasons. An automation matches them with
``match: {"prefect.resource.id": "evergraph.model.*"}`` and ``expect: ["evergraph.champion.promoted"]``.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect.events import emit_event

logger = logging.getLogger(__name__)

PROMOTED = "evergraph.champion.promoted"
ROLLED_BACK = "evergraph.champion.rolled-back"


def _resource(*, model_name: str, version: str, lineage: str) -> dict[str, str]:
    return {
        "prefect.resource.id": f"evergraph.model.{model_name}.{version}",
        "prefect.resource.name": f"{model_name} version {version}",
        "evergraph.lineage": lineage,
    }


def emit_champion_event(
    event: str,
    *,
    model_name: str,
    version: str,
    snapshot: int,
    lineage: str,
    previous: str | None,
    reasons: list[str] | None = None,
) -> None:
    """Emit ``event`` (:data:`PROMOTED` or :data:`ROLLED_BACK`) for ``version``; a failure to emit is logged,
    never raised (the champion has already changed)."""
    payload: dict[str, Any] = {"version": version, "snapshot": snapshot, "lineage": lineage, "previous": previous}
    if reasons is not None:
        payload["reasons"] = reasons
    try:
        emit_event(
            event=event, resource=_resource(model_name=model_name, version=version, lineage=lineage), payload=payload
        )
    except Exception as error:  # noqa: BLE001 - an event is a notification; serving has already switched
        logger.warning("could not emit %s for version %s: %s", event, version, error)
