"""Task runners by name: threads on one machine (default); Dask or Ray past one machine."""

from __future__ import annotations

from typing import Any, Literal

from prefect.task_runners import ThreadPoolTaskRunner

from evergraph.kg.errors import EvergraphError

TaskRunnerName = Literal["threads", "dask", "ray"]


def make_task_runner(name: TaskRunnerName = "threads", max_workers: int = 4, *, address: str | None = None) -> Any:
    """``threads`` (default; ``max_workers`` threads, default 4) runs index builds and evaluation of a snapshot
    in parallel on this machine. ``dask`` / ``ray`` need the extras (``pip install -c constraints.txt
    'evergraph[dask]'`` / ``'evergraph[ray]'``) and spread the same tasks over a cluster: the one at ``address``
    (``tcp://host:8786`` for Dask, ``ray://host:10001`` for Ray), or without one a local cluster of ``max_workers``
    single-threaded worker processes (Dask) / a local Ray instance of ``max_workers`` CPUs."""
    if name == "threads":
        if address is not None:
            raise EvergraphError("a task runner address needs task_runner dask or ray, not threads")
        return ThreadPoolTaskRunner(max_workers=max_workers)
    module, cls, package = {
        "dask": ("prefect_dask", "DaskTaskRunner", "evergraph[dask] (prefect-dask)"),
        "ray": ("prefect_ray", "RayTaskRunner", "evergraph[ray] (prefect-ray)"),
    }[name]
    try:
        runner = getattr(__import__(module), cls)
    except ImportError as error:
        raise EvergraphError(
            f"task runner {name!r} needs {package}: pip install -c constraints.txt {package.split(' ')[0]}"
        ) from error
    if address is not None:
        return runner(address=address)
    if name == "dask":
        return runner(cluster_kwargs={"n_workers": max_workers, "threads_per_worker": 1, "processes": True})
    return runner(init_kwargs={"num_cpus": max_workers})  # a local Ray instance running max_workers tasks at once
