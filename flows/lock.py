"""One pipeline at a time per Evergraph home: a manual ``evergraph run`` and a scheduled deployment run (or two
workers) on the same home take turns instead of interleaving their registrations and promotions.

The lock is ``HOME/pipeline.lock`` (an OS file lock via :mod:`filelock`: released when its process ends, even on a
crash). A second pipeline waits for the first (logging once that it waits), then plans again and finds the
snapshots the first one learned already registered.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from filelock import FileLock, Timeout

from evergraph.flows.params import PipelineConfig  # also where Prefect resolves the wrapped flow's annotations
from evergraph.kg.errors import PipelineBusyError
from evergraph.kg.store.home import EvergraphHome

logger = logging.getLogger(__name__)

LOCK_FILE = "pipeline.lock"
F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def pipeline_lock(home: EvergraphHome, *, timeout: float | None = None) -> Iterator[None]:
    """Hold ``home``'s pipeline lock for the block; waits for another holder (``timeout`` seconds at most,
    default None: as long as it takes; then :class:`~evergraph.kg.errors.PipelineBusyError`)."""
    home.root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(home.root / LOCK_FILE, thread_local=False, is_singleton=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        logger.warning("another pipeline is running on %s; waiting for it to finish (%s)", home.root, lock.lock_file)
        started = time.monotonic()
        try:
            lock.acquire(timeout=-1 if timeout is None else timeout)
        except Timeout:
            raise PipelineBusyError(
                f"another pipeline still holds {lock.lock_file} after {timeout:.0f}s; wait for it to finish, "
                "or stop it (the lock is released when its process ends)"
            ) from None
        logger.info("the other pipeline finished after %.1fs; continuing", time.monotonic() - started)
    try:
        yield
    finally:
        lock.release()


def one_pipeline_per_home(fn: F) -> F:
    """Decorate a flow function taking ``config`` (a :class:`~evergraph.flows.params.PipelineConfig` or None) so
    that its whole run holds the home's :func:`pipeline_lock`."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def locked(*args: Any, **kwargs: Any) -> Any:
        config = signature.bind(*args, **kwargs).arguments.get("config") or PipelineConfig()
        with pipeline_lock(config.evergraph_home()):
            return fn(*args, **kwargs)

    return locked  # type: ignore[return-value]
