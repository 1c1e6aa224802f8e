"""The lifelong pipeline on a real Dask cluster (the ``dask`` extra): a ``LocalCluster`` of 2 worker processes runs the
snapshot subflows' tasks, and the run ends as on threads (a version per snapshot, a served champion)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evergraph.flows.lifelong import lifelong_pipeline
from evergraph.flows.runners import make_task_runner
from evergraph.kg.errors import EvergraphError
from evergraph.kg.store.bundle import load_champion
from tests.flows.test_lifelong import quick_config, small_source


def test_an_address_needs_a_cluster_runner() -> None:
    with pytest.raises(EvergraphError, match="needs task_runner dask or ray"):
        make_task_runner("threads", address="tcp://127.0.0.1:8786")


def test_the_dask_runner_takes_the_cluster_address_or_starts_local_processes() -> None:
    pytest.importorskip("prefect_dask", reason="the dask extra is not installed")
    remote = make_task_runner("dask", address="tcp://10.0.0.1:8786")
    assert remote.address == "tcp://10.0.0.1:8786"
    local = make_task_runner("dask", max_workers=3)
    assert local.cluster_kwargs["n_workers"] == 3 and local.cluster_kwargs["processes"] is True


@pytest.mark.slow  # a Dask cluster of 2 processes and the whole pipeline
def test_the_pipeline_runs_on_a_dask_local_cluster(example_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("prefect_dask", reason="the dask extra is not installed")
    distributed = pytest.importorskip("distributed")

    source = small_source(example_data, tmp_path / "source", snapshots=2)
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        workers = set(cluster.scheduler_info["workers"])
        assert len(workers) == 2
        config = quick_config(tmp_path / "home").model_copy(
            update={"task_runner": "dask", "task_runner_address": cluster.scheduler_address}
        )
        with distributed.get_task_stream(client) as stream:
            summary = lifelong_pipeline(source=str(source), strategy="lkge", model="transe", config=config)
        ran_on = {record["worker"] for record in stream.data}
    assert [r["snapshot"] for r in summary["created"]] == [0, 1]
    assert summary["champion"] is not None
    assert stream.data, "no task ran on the Dask cluster"
    assert ran_on <= workers  # every task ran in one of the cluster's worker processes
    champion = load_champion(tmp_path / "home")
    assert champion.version == summary["champion"]
