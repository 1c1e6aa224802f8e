"""The lifelong pipeline on a real Dask cluster (the ``dask`` extra): a ``LocalCluster`` of 2 worker processes runs the
snapshot subflows' tasks, and the run ends as on threads (a version per snapshot, a served champion); the comparison
with the champion spreads its per-test-set tasks over the cluster's workers (and over a local Ray instance with the
``ray`` extra) and gives what it gives on threads."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect import flow

from evergraph.flows.lifelong import lifelong_pipeline
from evergraph.flows.runners import make_task_runner
from evergraph.kg.errors import EvergraphError
from evergraph.kg.store.bundle import load_champion
from evergraph.kg.store.bundle_writer import switch_pointer
from evergraph.kg.store.home import EvergraphHome
from evergraph.tasks.evaluate import compare_with_champion
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


def test_the_ray_runner_takes_the_cluster_address_or_starts_a_local_instance() -> None:
    pytest.importorskip("prefect_ray", reason="the ray extra is not installed")
    remote = make_task_runner("ray", address="ray://10.0.0.1:10001")
    assert remote.address == "ray://10.0.0.1:10001"
    local = make_task_runner("ray", max_workers=3)
    assert local.address is None and local.init_kwargs["num_cpus"] == 3


@flow
def comparing(home: str, source: str, run_dir: str) -> dict | None:
    return compare_with_champion(home=home, source=source, run_dir=run_dir, snapshot=1)


def _comparison_inputs(home: EvergraphHome, run: Path, data: Path) -> dict[str, str]:
    """Snapshot 1 of ``run`` against a champion of snapshot 0: two test sets to rank, two different models."""
    switch_pointer(pointer=home.champion_pointer, bundle=home.bundle_dir("1"), version="1")
    return {"home": str(home.root), "source": str(data), "run_dir": str(run)}


@pytest.mark.slow  # a Dask cluster of 2 processes
def test_the_per_test_set_comparison_spreads_over_dask_workers(
    knowledge_home: EvergraphHome, knowledge_run: Path, example_data: Path
) -> None:
    pytest.importorskip("prefect_dask", reason="the dask extra is not installed")
    distributed = pytest.importorskip("distributed")

    inputs = _comparison_inputs(knowledge_home, knowledge_run, example_data)
    on_threads = comparing(**inputs)
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        runner = make_task_runner("dask", address=cluster.scheduler_address)
        with distributed.get_task_stream(client) as stream:
            on_dask = comparing.with_options(task_runner=runner)(**inputs)
        workers = set(cluster.scheduler_info["workers"])
    assert on_threads is not None and on_dask == on_threads  # the same comparison wherever its tasks ran
    ran = [record for record in stream.data if "compare_test_set" in str(record.get("key", ""))]
    assert len(ran) == 2  # one task per test set (1 and 0), each in one of the cluster's worker processes
    assert {record["worker"] for record in ran} <= workers


@pytest.mark.slow  # a local Ray instance
def test_the_per_test_set_comparison_runs_on_ray(
    knowledge_home: EvergraphHome, knowledge_run: Path, example_data: Path
) -> None:
    pytest.importorskip("prefect_ray", reason="the ray extra is not installed")
    inputs = _comparison_inputs(knowledge_home, knowledge_run, example_data)
    on_threads = comparing(**inputs)
    on_ray = comparing.with_options(task_runner=make_task_runner("ray", max_workers=2))(**inputs)
    assert on_threads is not None and on_ray == on_threads
