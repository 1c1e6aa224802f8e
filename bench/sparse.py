"""Sparse training path (issue 11, "cost that follows the facts"): epoch time over the same new facts in graphs of
growing size, dense Adam vs ``sparse_adam``, and the lkge quality on ENTITY with each; writes the ``sparse`` section
of ``bench/RESULTS.md``.

Epoch time (:func:`epoch_times`): a synthetic graph of N entities (64 relations, ~5 old facts per entity, long-tailed
tail popularity) whose snapshot 0 is taken as learned (the LKGE regulariser holds every old row), then one growth
snapshot of the **same** new facts at every size (a fixed seed; heads and tails among the first 20,000 entities,
so the rows a batch touches are the same work at every size). LKGE trains it for 4 epochs; epochs 2 and 3 (pure
training: validation only after the last) are timed. Everything but the table size is equal, so what grows is what
a step spends on the whole table.

    python bench/sparse.py --epochs-only --sizes 20000,200000,1000000        # under the heavy-job lock
    python bench/sparse.py --entity sparse_adam                             # one lkge ENTITY run (lock)
    python bench/sparse.py --report                                         # the section from the saved runs
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._results import write_section  # noqa: E402

RUNS = ROOT / "bench" / "runs" / "sparse"
ENTITY = ROOT.parent / "shared" / "data" / "lkge" / "ENTITY"
NUM_RELATIONS = 64
OLD_FACTS_PER_ENTITY = 5
SHARED_ENTITIES = 20_000
logger = logging.getLogger("bench")


def _commit() -> str:
    git = ["git", "rev-parse", "--short", "HEAD"]
    return subprocess.run(git, capture_output=True, text=True, cwd=ROOT).stdout.strip()


def _long_tailed(rng: np.random.Generator, count: int, entities: int) -> np.ndarray:
    """``count`` entity ids below ``entities``, drawn by a Pareto popularity (a few hubs, a long tail)."""
    popularity = rng.pareto(1.2, size=entities) + 1.0
    return rng.choice(entities, size=count, p=popularity / popularity.sum())


def synthetic_stream(num_entities: int, *, new_facts: int) -> Any:
    """Snapshot 0 (``5 * num_entities`` old facts) and snapshot 1 (the same ``new_facts`` at every size)."""
    from evergraph.kg.engine.snapshot import Snapshot

    rng = np.random.default_rng(num_entities)
    count = OLD_FACTS_PER_ENTITY * num_entities
    heads, relations = rng.integers(0, num_entities, count), rng.integers(0, NUM_RELATIONS, count)
    old = np.stack([heads, relations, _long_tailed(rng, count, num_entities)], axis=1)
    shared = np.random.default_rng(11)  # the same new facts whatever the size
    new = np.stack(
        [
            _long_tailed(shared, new_facts, SHARED_ENTITIES),
            shared.integers(0, NUM_RELATIONS, new_facts),
            _long_tailed(shared, new_facts, SHARED_ENTITIES),
        ],
        axis=1,
    )
    empty = torch.empty((0, 3), dtype=torch.long)

    class Stream:
        def __init__(self) -> None:
            self.snapshots = [
                Snapshot(0, torch.from_numpy(old), empty, empty, num_entities, NUM_RELATIONS, "old"),
                Snapshot(1, torch.from_numpy(new), empty, empty, num_entities, NUM_RELATIONS, "new"),
            ]

        def train_facts(self, upto: int) -> torch.Tensor:
            return torch.cat([s.train for s in self.snapshots[: upto + 1]])

        def retired_entities(self, upto: int) -> torch.Tensor:
            return torch.empty(0, dtype=torch.long)

    return Stream()


def epoch_time(num_entities: int, *, optimizer: str, new_facts: int, dim: int, epochs: int) -> dict[str, Any]:
    """Seconds per pure training epoch of the growth snapshot (lkge, regulariser active) at this size."""
    from evergraph.kg.engine.config import ModelConfig, RunConfig, TrainConfig
    from evergraph.kg.engine.run_files import peak_rss_mb
    from evergraph.kg.engine.strategies import SnapshotContext, get_strategy
    from evergraph.kg.engine.training import train_snapshot

    stream = synthetic_stream(num_entities, new_facts=new_facts)
    train = TrainConfig(max_epochs=epochs, eval_every=epochs, patience=1, seed=0, device="cpu", optimizer=optimizer)
    config = RunConfig(strategy="lkge", model=ModelConfig(dim=dim), train=train)
    strategy = get_strategy(config)
    generator = torch.Generator().manual_seed(0)
    ctx0 = SnapshotContext(kg=stream, index=0, device=torch.device("cpu"), generator=generator)
    model = strategy.prepare(None, ctx0)
    strategy.finish(model, ctx0)  # snapshot 0 counts as learned: every old row is regularised
    ctx = SnapshotContext(kg=stream, index=1, device=torch.device("cpu"), generator=generator)
    model = strategy.prepare(model, ctx)
    stamps: list[float] = []
    losses: list[float] = []

    def on_epoch(record: dict[str, float]) -> None:
        stamps.append(time.perf_counter())
        losses.append(record["loss"])

    started = time.perf_counter()
    train_snapshot(
        model=model,
        strategy=strategy,
        ctx=ctx,
        config=train,
        validate=lambda m: 0.0,
        show_progress=False,
        on_epoch=on_epoch,
    )
    pure = np.diff(stamps[:-1])  # epochs 2..n-1: no setup before them, no validation or best-weights copy in them
    return {
        "entities": num_entities,
        "optimizer": optimizer,
        "new_facts": new_facts,
        "steps_per_epoch": -(-2 * new_facts // train.batch_size),
        "dim": dim,
        "epoch_s": round(float(np.mean(pure)), 3),
        "epoch_s_all": [round(float(x), 3) for x in pure],
        "train_s": round(time.perf_counter() - started, 1),
        "loss_last": round(losses[-1], 4),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "commit": _commit(),
        "date": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "load": round(os.getloadavg()[0], 1),
    }


def step_time(num_entities: int, *, optimizer: str, new_facts: int, dim: int, steps: int) -> dict[str, Any]:
    """CPU seconds per training step of the growth snapshot at this size (the light measure: ``steps`` steps after
    5 warm-up steps, the same batches of the same new facts at every size; process CPU time, so other jobs on the
    machine inflate it less than wall time)."""
    from evergraph.kg.engine.config import ModelConfig, RunConfig, TrainConfig
    from evergraph.kg.engine.model import doubled_triples
    from evergraph.kg.engine.run_files import peak_rss_mb
    from evergraph.kg.engine.strategies import SnapshotContext, get_strategy
    from evergraph.kg.engine.training import make_optimizer, train_step

    stream = synthetic_stream(num_entities, new_facts=new_facts)
    train = TrainConfig(seed=0, device="cpu", optimizer=optimizer)
    config = RunConfig(strategy="lkge", model=ModelConfig(dim=dim), train=train)
    strategy = get_strategy(config)
    generator = torch.Generator().manual_seed(0)
    ctx0 = SnapshotContext(kg=stream, index=0, device=torch.device("cpu"), generator=generator)
    model = strategy.prepare(None, ctx0)
    strategy.finish(model, ctx0)
    ctx = SnapshotContext(kg=stream, index=1, device=torch.device("cpu"), generator=generator)
    model = strategy.prepare(model, ctx)
    optimizer_ = make_optimizer(model, train.lr, kind=optimizer)
    triples = doubled_triples(stream.snapshots[1].train)
    order = torch.randperm(len(triples), generator=torch.Generator().manual_seed(1))
    cpu, wall = [], []
    for step in range(5 + steps):
        batch = triples[order[step * train.batch_size : (step + 1) * train.batch_size]]
        negatives = torch.randint(num_entities, (len(batch), train.num_negatives), generator=generator)
        started_cpu, started = time.process_time(), time.perf_counter()
        train_step(
            model=model,
            strategy=strategy,
            ctx=ctx,
            batch=batch,
            negatives=negatives,
            optimizer=optimizer_,
            config=train,
        )
        if step >= 5:
            cpu.append(time.process_time() - started_cpu)
            wall.append(time.perf_counter() - started)
    return {
        "entities": num_entities,
        "optimizer": optimizer,
        "dim": dim,
        "steps": steps,
        "step_cpu_ms": round(1000 * float(np.median(cpu)), 1),
        "step_wall_ms": round(1000 * float(np.median(wall)), 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "commit": _commit(),
        "date": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "load": round(os.getloadavg()[0], 1),
    }


def entity_run(optimizer: str, *, extra: list[str]) -> dict[str, Any]:
    """One whole lkge run on ENTITY (paper protocol) with ``optimizer``; its metrics with how it was made."""
    from bench.lifelong import run_strategy

    label = f"lkge-{optimizer}-sparse-bench"
    out = ROOT / "bench" / "runs" / f"ENTITY-{label}-lkge-paper"
    shutil.rmtree(out, ignore_errors=True)  # a fresh run, never a resumed one
    started = time.perf_counter()
    options = ["--optimizer", optimizer, *extra]
    metrics = run_strategy("ENTITY", "lkge", protocol="lkge-paper", extra=options, label=label)
    snaps = metrics["snapshots"]
    return {
        "optimizer": optimizer,
        "extra": extra,
        "stream_mrr": [round(s["stream"]["mrr"], 4) for s in snaps],
        "hits@10": round(snaps[-1]["stream"]["hits@10"], 4),
        "epochs": [s["epochs"] for s in snaps],
        "train_s": round(sum(s["train_seconds"] for s in snaps), 1),
        "wall_s": round(time.perf_counter() - started, 1),
        "commit": _commit(),
        "date": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "load": round(os.getloadavg()[0], 1),
    }


def report() -> str:
    epochs = [json.loads(p.read_text()) for p in sorted(RUNS.glob("epoch-*.json"))]
    entity = {r["optimizer"]: r for r in (json.loads(p.read_text()) for p in sorted(RUNS.glob("entity-*.json")))}
    lines = [
        "## Sparse training path (`bench/sparse.py`, issue 11: cost that follows the facts)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores shared with other jobs, torch {torch.__version__}, "
        "one torch thread; commit and load average per row (the engine, `kg/engine/`, is the same at every commit "
        "listed: only other layers changed between them).",
        "",
    ]
    if epochs:
        first = epochs[0]
        lines += [
            f"**Epoch over the same {first['new_facts']:,} new facts** (+ inverses: {first['steps_per_epoch']} "
            f"steps of 2,048), lkge (autoencoder + regulariser on), TransE dim {first['dim']}, 10 negatives, "
            "regulariser active on every old row; mean of the pure epochs 2-3 of 4 (see the module docstring).",
            "",
            "| entities in the table | optimizer | epoch (s) | vs 20k same optimizer | peak RSS (MB) | commit | load |",
            "|---|---|---|---|---|---|---|",
        ]
        base = {r["optimizer"]: r["epoch_s"] for r in epochs if r["entities"] == SHARED_ENTITIES}
        for r in sorted(epochs, key=lambda r: (r["optimizer"], r["entities"])):
            ratio = f"{r['epoch_s'] / base[r['optimizer']]:.2f}x" if r["optimizer"] in base else "-"
            lines.append(
                f"| {r['entities']:,} | {r['optimizer']} | {r['epoch_s']} | {ratio} | {r['peak_rss_mb']:,.0f} "
                f"| {r['commit']} | {r['load']} |"
            )
        lines.append("")
    steps = [json.loads(p.read_text()) for p in sorted(RUNS.glob("step-*.json"))]
    if steps:
        lines += [
            "**CPU time per training step** (the light measure, `--steps 20`: the same 20 batches of 2,048 of the same "
            "new facts at every size after 5 warm-up steps, median of the step's process CPU time; lkge, TransE, "
            "10 negatives, regulariser active on every old row; each size in its own process, without the heavy-job "
            "lock: each took under a minute):",
            "",
            "| entities in the table | dim | adam (ms) | sparse_adam (ms) | adam / sparse_adam "
            "| sparse_adam vs its 20k | sparse_adam vs adam at 20k | peak RSS (MB) | commit |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        by = {(r["entities"], r["dim"], r["optimizer"]): r for r in steps}
        for size, dim in sorted({(r["entities"], r["dim"]) for r in steps}, key=lambda k: (k[1], k[0])):
            dense, sparse = by.get((size, dim, "adam")), by.get((size, dim, "sparse_adam"))
            base_s, base_d = by.get((SHARED_ENTITIES, dim, "sparse_adam")), by.get((SHARED_ENTITIES, dim, "adam"))

            def ms(r: dict[str, Any] | None) -> str:
                return "-" if r is None else str(r["step_cpu_ms"])

            def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
                return "-" if a is None or b is None else f"{a['step_cpu_ms'] / b['step_cpu_ms']:.2f}x"

            rss = max(r["peak_rss_mb"] for r in (dense, sparse) if r is not None)
            commits = " / ".join(dict.fromkeys(r["commit"] for r in (dense, sparse) if r is not None))
            lines.append(
                f"| {size:,} | {dim} | {ms(dense)} | {ms(sparse)} | {ratio(dense, sparse)} | {ratio(sparse, base_s)} "
                f"| {ratio(sparse, base_d)} | {rss:,.0f} | {commits} |"
            )
        lines.append("")
    if entity:
        lines += [
            "**Quality on ENTITY** (lkge, paper protocol, the engine's defaults unless noted; stream MRR after each "
            "snapshot):",
            "",
            "| optimizer | settings | stream MRR s0..s4 | final H@10 | epochs per snapshot | train s | commit | load |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in entity.values():
            lines.append(
                f"| {r['optimizer']} | {' '.join(r['extra']) or 'defaults'} | {' / '.join(map(str, r['stream_mrr']))} "
                f"| {r['hits@10']} | {' / '.join(map(str, r['epochs']))} | {r['train_s']} | {r['commit']} "
                f"| {r['load']} |"
            )
        lines.append("")
    example = RUNS / "example-models.json"
    if example.exists():
        rows = json.loads(example.read_text())
        lines += [
            "**Every interaction on the example graph** (full scale, the demo settings `example_config`: dim 64, "
            "validation every 2 epochs, at most 100; lkge, final stream MRR after 5 snapshots, seed 0; commit "
            f"{rows[0]['commit']}):",
            "",
            "| model | adam: stream MRR | sparse_adam: stream MRR | adam: epochs | sparse_adam: epochs "
            "| adam / sparse_adam train s |",
            "|---|---|---|---|---|---|",
        ]
        by = {(r["model"], r["optimizer"]): r for r in rows}
        for model in dict.fromkeys(r["model"] for r in rows):
            dense, sparse = by[(model, "adam")], by[(model, "sparse_adam")]
            lines.append(
                f"| {model} | {dense['stream_mrr']} | {sparse['stream_mrr']} | {' / '.join(map(str, dense['epochs']))} "
                f"| {' / '.join(map(str, sparse['epochs']))} | {dense['train_s']} / {sparse['train_s']} |"
            )
        lines.append("")
    lines += NOTES
    if not entity:
        lines.append(
            "- *Not measured: lkge on ENTITY with `sparse_adam` vs `adam`* (the issue's quality bar, stream MRR within "
            "0.005): both runs (reduced: dim 64, at most 30 epochs) were queued on the shared heavy-job lock "
            "(`python bench/sparse.py --entity sparse_adam --entity-extra '--dim 64 --max-epochs 30'`, then `--entity "
            "adam`, then `--report`), which ENTITY retraction runs held from 02:30 UTC past the end of this work."
        )
    if not epochs:
        lines.append(
            "- *Not measured: whole timed epochs* (`--epochs-only`, 4 epochs per size, under the heavy-job lock) for "
            "the same reason; the per-step measure above is the light stand-in."
        )
    return "\n".join(lines)


NOTES: list[str] = [
    "**What the figures say.**",
    "",
    "- *Cost follows the batch on the sparse path.* Over the same new facts, a dense-Adam step grows with the table "
    "(dim 32: 21.5 ms at 20k entities, 135 ms at 200k, 1,220 ms at 1M, 57x; dim 200: 108 ms -> 1,585 ms from 20k to "
    "200k): Adam's update of every row, the regulariser's pull on every old row and the squared norms of the whole "
    "table. A `sparse_adam` step at 1M costs 1.71x its 20k step (dim 32; 1.34x from 20k to 200k at dim 200), and "
    "26x less than the dense step at 1M. What still grows is memory traffic, not work: the same ~25k rows a step are "
    "gathered from and scattered into larger tables (the optimizer's moments and the regulariser's old rows miss the "
    "caches; 3.8 -> 15.5 ms of the step's optimizer time from 20k to 1M), and negatives drawn from a larger table "
    "repeat less, so a step holds more distinct rows.",
    "- *The issue's target* (an epoch over the same new facts at most 2x as long in the big graph as in the 20k "
    "one): **met on the sparse path**: whole timed epochs over the same 100,000 new facts (98 steps; the issue's "
    "250k cut to 100k to keep the heavy-job lock hold short) take 2.37 s at 20k entities, 3.80 s at 200k and 4.07 s "
    "at 1M: 1.72x. Against the dense path's 20k epoch (1.94 s, today's cheaper small-graph step) the 1M sparse epoch "
    "is 2.10x: just missed. The per-step measure agrees (1.71x and 2.20x). The dense epoch at 1M was not timed whole "
    "(its step, 1.22 s, makes it about 120 s: 30x the sparse one); at 200k it is 11.05 s, 2.9x the sparse one.",
    "- *Quality*: the loss and the gradients of the touched rows are the dense path's "
    "(`tests/kg/test_sparse_training.py`, all four models); what differs is the optimizer (lazy Adam: a row's moments "
    "move only when the row is in a batch; dense Adam keeps moving every row on its momentum) and the regulariser "
    "(only on touched rows; an untouched row does not move, so its drift waits). On the example graph the final "
    "stream MRR moves by -0.003 (TransE), +0.005 (RotatE), +0.016 (DistMult), -0.001 (ComplEx). **On ENTITY** "
    "(lkge, paper protocol, reduced setting: dim 64, at most 30 epochs a snapshot, which every snapshot of both runs "
    "reached) the stream MRR after each snapshot differs by at most 0.0011 (final 0.2884 sparse vs 0.2879 dense): "
    "the issue's bar (within 0.005) is met in this reduced setting; the default setting (dim 200, up to 200 "
    "epochs) was not run.",
    "- *Default: `adam` stays*, though the sparse path keeps the quality: on graphs of ENTITY's size and smaller "
    "its step is no faster (0.77x at 20k, dim 32; 0.91x at dim 200; the example graph trains in 16.1 s instead of "
    "12.4 s with TransE, ENTITY in 236 s instead of 211 s at dim 64), and changing the "
    "default would change the configuration checksum of every run made with the defaults (an existing run "
    "directory or lineage would refuse to continue, or start over). Use `--optimizer sparse_adam` "
    "(`TrainConfig(optimizer='sparse_adam')`) from about 100k entities: 3.6x faster steps at 200k (dim 32), 10x at "
    "dim 200, 26x at 1M.",
]
"""What the figures say (written after they were measured)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs-only", action="store_true", help="measure the epoch times only")
    parser.add_argument("--sizes", default="20000,200000,1000000", help="entities in the table, comma-separated")
    parser.add_argument("--optimizers", default="adam,sparse_adam")
    parser.add_argument("--new-facts", type=int, default=250_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4, help="epochs trained per size (2..n-1 are timed)")
    parser.add_argument("--steps", type=int, default=0, help="the light measure: CPU ms per step over this many steps")
    parser.add_argument("--entity", default=None, help="one lkge ENTITY run with this optimizer")
    parser.add_argument("--entity-extra", default="", help="extra `evergraph train` options for --entity")
    parser.add_argument("--report", action="store_true", help="write the section from the saved measurements")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    RUNS.mkdir(parents=True, exist_ok=True)
    if args.epochs_only:
        for size in [int(s) for s in args.sizes.split(",")]:
            for optimizer in args.optimizers.split(","):
                result = epoch_time(
                    size, optimizer=optimizer, new_facts=args.new_facts, dim=args.dim, epochs=args.epochs
                )
                (RUNS / f"epoch-{size}-{optimizer}.json").write_text(json.dumps(result, indent=1))
                logger.info("%s", json.dumps(result))
    if args.steps:
        for size in [int(s) for s in args.sizes.split(",")]:
            for optimizer in args.optimizers.split(","):
                result = step_time(size, optimizer=optimizer, new_facts=args.new_facts, dim=args.dim, steps=args.steps)
                (RUNS / f"step-{size}-{optimizer}-d{args.dim}.json").write_text(json.dumps(result, indent=1))
                logger.info("%s", json.dumps(result))
    if args.entity:
        result = entity_run(args.entity, extra=args.entity_extra.split())
        (RUNS / f"entity-{args.entity}.json").write_text(json.dumps(result, indent=1))
        logger.info("%s", json.dumps(result))
    if args.report:
        write_section("sparse", report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
