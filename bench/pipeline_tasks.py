"""Where the pipeline's time goes, per snapshot: each ``snapshot-N`` subflow's wall time against its engine's
training and evaluation seconds, with every task's duration as Prefect recorded it.

    PREFECT_HOME=/tmp/pt/prefect python bench/pipeline_tasks.py --data ../shared/data/lkge/ENTITY --home /tmp/pt/home

Runs ``lifelong_pipeline`` with the engine's defaults (lkge, TransE, seed 0) on a fresh home and prints JSON lines:
one per snapshot (``subflow_s``, ``engine_s``, ``overhead_s``) and one per task run. Unlike ``bench/pipeline.py
--sections orchestration`` it needs no second (bare engine) run, and it is not fooled when the two runs train
different epochs; it does not count Prefect's start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from pathlib import Path

from prefect.client.orchestration import get_client

from evergraph.flows.lifelong import lifelong_pipeline
from evergraph.flows.params import PipelineConfig
from evergraph.kg.engine.config import RunConfig, TrainConfig


async def _runs() -> tuple[list, list]:
    async with get_client() as client:
        return await client.read_flow_runs(), await client.read_task_runs()


def task_seconds() -> dict[str, float]:
    """Seconds per task name (summed over its runs) of every task run in the Prefect database of ``PREFECT_HOME``
    (``bench/pipeline.py`` reads a finished pipeline's home this way: ``--read-tasks``)."""
    _, tasks = asyncio.run(_runs())
    totals: dict[str, float] = {}
    for run in tasks:
        if run.name.startswith("evergraph-"):  # a subflow's own task run: it spans the tasks inside it
            continue
        seconds = run.total_run_time.total_seconds() if run.total_run_time else 0.0
        key = re.sub(r"-(snapshot|version|to)-.*$", "", run.name)
        totals[key] = totals.get(key, 0.0) + seconds
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="the source (e.g. ../shared/data/lkge/ENTITY)")
    parser.add_argument("--home", help="a new Evergraph home for this run")
    parser.add_argument("--max-epochs", type=int, default=None, help="engine default when not given")
    parser.add_argument(
        "--read-tasks", action="store_true", help="run nothing: print seconds per task of PREFECT_HOME's database"
    )
    args = parser.parse_args()
    if args.read_tasks:
        print(json.dumps(task_seconds()))
        return 0
    if not args.data or not args.home:
        parser.error("--data and --home are required unless --read-tasks")
    train = TrainConfig(seed=0, device="cpu", **({"max_epochs": args.max_epochs} if args.max_epochs else {}))
    config = PipelineConfig(home=args.home, engine=RunConfig(train=train))
    lifelong_pipeline(source=args.data, strategy="lkge", model="transe", config=config)
    metrics = json.loads(next((Path(args.home) / "runs").glob("*/metrics.json")).read_text())
    engine = {e["snapshot"]: e["train_seconds"] + e.get("eval_seconds", 0.0) for e in metrics["snapshots"]}
    flows, tasks = asyncio.run(_runs())
    for run in sorted(flows, key=lambda r: r.start_time or 0):
        if run.name.startswith("snapshot-") and run.total_run_time:
            snapshot = int(run.name.split("-")[1])
            subflow = run.total_run_time.total_seconds()
            line = {"snapshot": snapshot, "subflow_s": round(subflow, 1), "engine_s": round(engine[snapshot], 1)}
            print(json.dumps({**line, "overhead_s": round(subflow - engine[snapshot], 1)}))
    for run in sorted(tasks, key=lambda r: r.start_time or 0):
        seconds = run.total_run_time.total_seconds() if run.total_run_time else 0.0
        print(json.dumps({"task": run.name, "seconds": round(seconds, 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
