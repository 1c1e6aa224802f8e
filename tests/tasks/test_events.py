"""Champion changes are Prefect events automations can match; a failure to emit never fails the promotion."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from evergraph.tasks import events


def test_promotion_event_names_the_version_and_the_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(events, "emit_event", lambda **kwargs: sent.append(kwargs))
    events.emit_champion_event(
        events.PROMOTED, model_name="evergraph-embeddings", version="3", snapshot=2, lineage="ex", previous="2",
        reasons=["no forgetting"],
    )  # fmt: skip
    assert len(sent) == 1
    assert sent[0]["event"] == "evergraph.champion.promoted"
    assert sent[0]["resource"]["prefect.resource.id"] == "evergraph.model.evergraph-embeddings.3"
    assert sent[0]["payload"] == {"version": "3", "snapshot": 2, "lineage": "ex", "previous": "2",
                                  "reasons": ["no forgetting"]}  # fmt: skip


def test_a_failure_to_emit_is_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(**kwargs: Any) -> None:
        raise ConnectionError("events API down")

    monkeypatch.setattr(events, "emit_event", broken)
    with caplog.at_level(logging.WARNING, logger="evergraph.tasks.events"):
        events.emit_champion_event(
            events.ROLLED_BACK, model_name="m", version="1", snapshot=0, lineage="ex", previous="3"
        )
    assert "could not emit evergraph.champion.rolled-back" in caplog.text
