"""Task runners by name: threads on one machine (default); Dask or Ray past one machine."""

from __future__ import annotations

from typing import Any, Literal

from prefect.task_runners import ThreadPoolTaskRunner

from evergraph.kg.errors import EvergraphError

TaskRunnerName = Literal["threads", "dask", "ray"]


def make_task_runner(name: TaskRunnerName = "threads", max_workers: int = 4) -> Any:
    """``threads`` (default; ``max_workers`` threads, default 4) runs index builds and evaluation of a snapshot
    in parallel on this machine. ``dask`` / ``ray`` need ``pip install prefect-dask`` / ``prefect-ray`` and
    spread the same tasks over a cluster (``DaskTaskRunner(address=...)``, ``RayTaskRunner(address=...)``)."""
    if name == "threads":
        return ThreadPoolTaskRunner(max_workers=max_workers)
    module, cls, package = {
        "dask": ("prefect_dask", "DaskTaskRunner", "prefect-dask"),
        "ray": ("prefect_ray", "RayTaskRunner", "prefect-ray"),
    }[name]
    try:
        runner = getattr(__import__(module), cls)
    except ImportError as error:
        raise EvergraphError(
            f"task runner {name!r} needs {package}: pip install -c constraints.txt {package}"
        ) from error
    return runner()
