"""Expected errors print one clean message: the console filter that keeps Prefect's tracebacks of an
:class:`EvergraphError` off the console (issue 13). The end-to-end check through Prefect is in
``tests/flows/test_fail_closed.py``."""

from __future__ import annotations

import logging
import sys

from evergraph.flows.quiet import ExpectedErrorFilter, expected_error_names, is_expected, quiet_expected_errors
from evergraph.kg.errors import BundleError, HistoryChangedError, SnapshotError


def record(
    name: str, message: str, *, level: int = logging.ERROR, error: BaseException | None = None
) -> logging.LogRecord:
    exc_info = None
    if error is not None:
        try:
            raise error
        except BaseException:  # noqa: BLE001 - we want the traceback of exactly this error
            exc_info = sys.exc_info()
    return logging.LogRecord(name, level, __file__, 1, message, None, exc_info)


def test_records_that_only_repeat_an_expected_error_are_dropped() -> None:
    quiet = ExpectedErrorFilter()
    changed = HistoryChangedError("snapshot 1 changed")
    assert not quiet.filter(record("prefect.task_runs", "Task run failed with exception", error=changed))
    state = "Finished in state Failed('Flow run encountered an exception: HistoryChangedError: x')"
    assert not quiet.filter(record("prefect.flow_runs", state))
    assert not quiet.filter(record("prefect.flow_runs", "Encountered exception during execution: BundleError('x')"))
    assert not quiet.filter(record("prefect.flow_runs", state, level=logging.INFO))  # Prefect logs final states at INFO
    final = record("evergraph.tasks.common", "plan failed with a final error, not retrying: x")
    final.evergraph_error = changed
    assert not quiet.filter(final)


def test_unexpected_errors_and_ordinary_records_stay() -> None:
    quiet = ExpectedErrorFilter()
    assert quiet.filter(record("prefect.task_runs", "Task run failed", error=RuntimeError("a bug")))
    assert quiet.filter(record("prefect.flow_runs", "Finished in state Failed('... RuntimeError: a bug')"))
    assert quiet.filter(record("prefect.flow_runs", "Finished in state Completed()", level=logging.INFO))
    assert quiet.filter(record("evergraph.tasks.train", "snapshot 0: 3 epochs", level=logging.INFO))


def test_an_expected_error_behind_another_is_still_expected() -> None:
    try:
        try:
            raise SnapshotError([])
        except SnapshotError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert is_expected(outer)
    assert not is_expected(RuntimeError("plain")) and not is_expected(None)
    assert {"EvergraphError", "SnapshotError", "HistoryChangedError", "BundleError"} <= expected_error_names()


def test_the_filter_sits_on_console_handlers_only_while_a_command_runs() -> None:
    seen: list[logging.LogRecord] = []

    class Console(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    console, root = Console(), logging.getLogger()
    root.addHandler(console)
    logger = logging.getLogger("prefect.task_runs")
    try:
        with quiet_expected_errors():
            try:
                raise BundleError("the bundle v2 is broken")
            except BundleError:
                logger.error("Task run failed with exception", exc_info=True)
            logger.error("Task run failed: a bug")
        assert [r.getMessage() for r in seen] == ["Task run failed: a bug"]
        try:
            raise BundleError("the bundle v2 is broken")
        except BundleError:
            logger.error("after the command", exc_info=True)
        assert seen[-1].getMessage() == "after the command"
    finally:
        root.removeHandler(console)
