"""Expected errors print one clean line on the console, not Prefect's tracebacks.

An :class:`~evergraph.kg.errors.EvergraphError` (bad data, changed history, a broken bundle, an unknown version)
raised inside a flow is logged by Prefect several times on its way out: the task's failure with its traceback,
the task's and each flow's final state, the flow's "Encountered exception" with the traceback again (about 165
lines for one error). The ``evergraph`` command prints the error itself, once, with what to do next; so while a
pipeline command runs, :func:`quiet_expected_errors` keeps those records off the console handlers. Prefect's API
handler (the UI's logs) is left alone, and unexpected errors (bugs) keep their tracebacks everywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from evergraph.kg.errors import EvergraphError

__all__ = ["ExpectedErrorFilter", "expected_error_names", "is_expected", "quiet_expected_errors"]

_WATCHED = ("", "prefect", "prefect.flow_runs", "prefect.task_runs", "evergraph")
"""Loggers whose console handlers get the filter ("" is the root logger)."""


def expected_error_names() -> frozenset[str]:
    """The class names of every :class:`EvergraphError` subclass (and its own), as Prefect's state messages
    name them."""
    names, todo = set(), [EvergraphError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return frozenset(names)


def is_expected(error: BaseException | None) -> bool:
    """Whether ``error``, or an exception it was raised from, is an :class:`EvergraphError`."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, EvergraphError):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


class ExpectedErrorFilter(logging.Filter):
    """Drops, from a console handler, the records that only repeat an expected error: a record carrying an
    :class:`EvergraphError` (its traceback, or ``extra={"evergraph_error": error}``), and a Prefect run's record
    naming an :class:`EvergraphError` class (``Finished in state Failed(... HistoryChangedError: ...)``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and is_expected(record.exc_info[1]):
            return False
        if is_expected(getattr(record, "evergraph_error", None)):
            return False
        if record.levelno >= logging.INFO and record.name.startswith("prefect"):  # final states are INFO too
            message = record.getMessage()
            if any(f"{name}:" in message or f"{name}(" in message for name in expected_error_names()):
                return False
        return True


def _console_handlers() -> list[logging.Handler]:
    handlers: list[logging.Handler] = []
    for name in _WATCHED:
        for handler in logging.getLogger(name or None).handlers:
            if "api" in type(handler).__name__.lower() or handler in handlers:
                continue  # Prefect's API handlers feed the UI: keep its logs whole
            handlers.append(handler)
    return handlers


@contextmanager
def quiet_expected_errors() -> Iterator[ExpectedErrorFilter]:
    """Within the block, console handlers (of the root, ``prefect``, ``prefect.flow_runs``, ``prefect.task_runs``
    and ``evergraph`` loggers, as they are at entry) drop the records of :class:`ExpectedErrorFilter`."""
    quiet = ExpectedErrorFilter()
    handlers = _console_handlers()
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        yield quiet
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)
