"""One pipeline at a time per home: a second run waits for the first instead of interleaving with it."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from evergraph.flows.lifelong import lifelong_pipeline
from evergraph.flows.lock import one_pipeline_per_home, pipeline_lock
from evergraph.flows.params import PipelineConfig
from evergraph.kg.errors import PipelineBusyError
from evergraph.kg.store.home import EvergraphHome
from tests.conftest import wait_for


def test_a_second_pipeline_waits_for_the_first(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    order: list[str] = []
    release = threading.Event()

    @one_pipeline_per_home
    def pipeline(name: str, config: PipelineConfig | None = None) -> None:
        order.append(f"{name} in")
        if name == "manual":
            release.wait(timeout=30)
        order.append(f"{name} out")

    config = PipelineConfig(home=str(tmp_path / "home"))
    caplog.set_level(logging.WARNING, logger="evergraph.flows.lock")
    manual = threading.Thread(target=pipeline, args=("manual",), kwargs={"config": config})
    manual.start()
    assert wait_for(lambda: order == ["manual in"])
    scheduled = threading.Thread(target=pipeline, args=("scheduled", config))
    scheduled.start()
    assert wait_for(lambda: any("another pipeline is running" in r.getMessage() for r in caplog.records))
    release.set()
    manual.join(30)
    scheduled.join(30)
    assert order == ["manual in", "manual out", "scheduled in", "scheduled out"]


def test_other_homes_do_not_wait(tmp_path: Path) -> None:
    with pipeline_lock(EvergraphHome(tmp_path / "a")), pipeline_lock(EvergraphHome(tmp_path / "b"), timeout=0):
        pass


def test_a_wait_with_a_timeout_ends_in_a_clear_error(tmp_path: Path) -> None:
    home = EvergraphHome(tmp_path / "home")
    with pipeline_lock(home):
        errors: list[BaseException] = []

        def second() -> None:
            try:
                with pipeline_lock(home, timeout=0.05):
                    pass
            except PipelineBusyError as error:
                errors.append(error)

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(30)
    assert len(errors) == 1 and "pipeline.lock" in str(errors[0])
    with pipeline_lock(home, timeout=0):  # released when the holder's block ended
        pass


def test_the_lifelong_flow_holds_the_lock_and_keeps_its_parameters() -> None:
    assert lifelong_pipeline.fn.__wrapped__.__name__ == "lifelong_pipeline"
    assert set(lifelong_pipeline.parameters.properties) == {"source", "strategy", "model", "config"}
