"""The `evergraph` command's console: one line per event, warnings always, everything else only with -v."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from evergraph.kg.engine.events import events
from evergraph.kg.service.cli import ConsoleLogHandler, configure_logging


@pytest.fixture
def console_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if isinstance(h, ConsoleLogHandler)]:
        root.removeHandler(handler)
    root.setLevel(level)


def _emit_one_of_each() -> None:
    events.info("snapshot 0 learned: an event")
    logging.getLogger("evergraph.kg.engine.ingest").info("a detail")
    logging.getLogger("faiss.loader").info("Loading faiss with AVX2 support.")
    logging.getLogger("evergraph.kg.store.bundle").debug("a debug detail")
    logging.getLogger("evergraph.kg.engine.ingest").warning("something to look at")


def test_the_console_shows_events_and_warnings_once_each(
    console_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(verbose=False)
    configure_logging(verbose=False)  # configuring again replaces the handler: still one line per record
    _emit_one_of_each()
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["snapshot 0 learned: an event", "warning: something to look at"]


def test_verbose_shows_everything(console_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(verbose=True)
    _emit_one_of_each()
    err = capsys.readouterr().err
    for text in ("an event", "a detail", "AVX2", "a debug detail", "warning: something to look at"):
        assert text in err


def test_long_lines_are_not_wrapped(console_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(verbose=False)
    events.info("x" * 300)
    assert capsys.readouterr().err.splitlines() == ["x" * 300]
