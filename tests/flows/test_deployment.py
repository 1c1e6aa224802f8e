"""End to end: a real Prefect server on a free 127.0.0.1 port, deployments from prefect.yaml, a process worker
running ``evergraph-lifelong``; the flow run completes and the registry has a champion. Every process started
here is stopped."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from evergraph.flows.services import WORK_POOL, free_port, prefect_cli, start_prefect_server, start_worker, stop_process
from evergraph.kg.store.home import EvergraphHome
from evergraph.registry import ModelRegistry, RegistryConfig
from tests.flows.test_lifelong import small_source


@pytest.mark.slow
def test_deployed_pipeline_runs_through_a_process_worker(example_data: Path, tmp_path: Path) -> None:
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "EVERGRAPH_HOME": str(tmp_path / "home"),
    }
    logs = tmp_path / "logs"
    source = small_source(example_data, tmp_path / "source", snapshots=2)
    started = []
    try:
        started.append(start_prefect_server(port=port, env=env, logs=logs))
        started.append(start_worker(pool=WORK_POOL, env=env, logs=logs))
        out = prefect_cli("deploy", "--all", env=env)
        assert "evergraph-lifelong" in out and "evergraph-rollback" in out

        deployments = httpx.post(f"{api}/deployments/filter", json={}, timeout=30).json()
        by_name = {d["name"]: d for d in deployments}
        assert set(by_name) >= {"evergraph-lifelong", "evergraph-rollback"}
        lifelong = by_name["evergraph-lifelong"]
        assert lifelong["work_pool_name"] == WORK_POOL
        assert lifelong["schedules"] and "cron" in lifelong["schedules"][0]["schedule"]

        params = {
            "source": str(source),
            "strategy": "lkge",
            "model": "transe",
            "config": {
                "home": str(tmp_path / "home"),
                "engine": {
                    "model": {"dim": 32},
                    "train": {"max_epochs": 10, "eval_every": 5, "patience": 2, "device": "cpu"},
                },
            },
        }
        prefect_cli(
            "deployment", "run", "evergraph-lifelong/evergraph-lifelong",
            "--params", json.dumps(params), "--watch", "--watch-timeout", "600",
            env=env, timeout=700,
        )  # fmt: skip
        runs = httpx.post(
            f"{api}/flow_runs/filter",
            json={"deployments": {"id": {"any_": [lifelong["id"]]}}},
            timeout=30,
        ).json()
        states = [r["state_type"] for r in runs]
        assert "SCHEDULED" in states  # the cron schedule is live
        assert [s for s in states if s != "SCHEDULED"] == ["COMPLETED"], [r["state"] for r in runs]
    finally:
        for process in reversed(started):
            stop_process(process)
    assert all(p.process.poll() is not None for p in started)
    registry = ModelRegistry(config=RegistryConfig(), home=EvergraphHome.resolve(tmp_path / "home"))
    champion = registry.champion()
    assert champion is not None
    assert sorted(v.snapshot for v in registry.versions()) == [0, 1]
