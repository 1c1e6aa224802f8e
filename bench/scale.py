"""Scale benchmark (issue 11): a synthetic growing graph at several sizes, learned, evaluated, bundled, indexed and
guided; writes the ``scale`` section of ``bench/RESULTS.md`` and a log-log plot ``bench/scale.png``.

The graph (:func:`write_growing_graph`): entities in typed clusters with a long-tailed (Pareto) popularity, relations
between two clusters of three kinds (popularity-sampled, functional: the tail is a hash of the head, symmetric: both
directions), about 5 facts per entity in snapshot 0, then 4 growth snapshots of +5% facts each (half of them about
5% new entities). Every size runs in its own process (``--one``), so its peak RSS is its own.

    flock /tmp/evergraph-heavy.lock python bench/scale.py --sizes 20000,200000
    python bench/scale.py --sizes 2000 --dim 16 --no-write      # a quick smoke run
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._results import write_section  # noqa: E402

RUNS = ROOT / "bench" / "runs" / "scale"
PLOT = ROOT / "bench" / "scale.png"
logger = logging.getLogger("bench")

FACTS_PER_ENTITY = 5
GROWTH_SNAPSHOTS = 4
GROWTH = 0.05
NUM_RELATIONS = 64


# --------------------------------------------------------------------------------------------- the graph


def _grow(
    rng: np.random.Generator,
    *,
    count: int,
    popularity: np.ndarray,
    cluster: np.ndarray,
    relations: dict[str, np.ndarray],
    new_from: int | None = None,
) -> np.ndarray:
    """``count`` candidate facts ``[n, 3]`` (with repeats; the caller removes known ones). With ``new_from``, one end of
    each fact is an entity id ``>= new_from`` (the new entities of a growth snapshot)."""
    num_entities = len(popularity)
    order = np.argsort(cluster, kind="stable")
    bounds = np.searchsorted(cluster[order], np.arange(cluster.max() + 2))
    r = rng.choice(len(relations["head_cluster"]), size=count, p=relations["frequency"])

    def pick(clusters: np.ndarray) -> np.ndarray:
        out = np.empty(len(clusters), dtype=np.int64)
        for c in np.unique(clusters):
            where = np.nonzero(clusters == c)[0]
            members = order[bounds[c] : bounds[c + 1]]
            weights = popularity[members] / popularity[members].sum()
            out[where] = rng.choice(members, size=len(where), p=weights)
        return out

    h = pick(relations["head_cluster"][r])
    t = pick(relations["tail_cluster"][r])
    functional = relations["kind"][r] == 1
    if functional.any():  # the tail is a fixed function of the head: a member of the tail cluster
        c = relations["tail_cluster"][r[functional]]
        size = bounds[c + 1] - bounds[c]
        t[functional] = order[bounds[c] + (h[functional] * 2654435761 + r[functional] * 97) % size]
    if new_from is not None:
        fresh = rng.integers(new_from, num_entities, size=count)
        side = rng.random(count) < 0.5
        h = np.where(side, fresh, h)
        t = np.where(side, t, fresh)
    facts = np.stack([h, r, t], 1)
    symmetric = relations["kind"][r] == 2
    return np.concatenate([facts, facts[symmetric][:, [2, 1, 0]]])


def write_growing_graph(out: Path, *, num_entities: int, seed: int = 0) -> dict[str, Any]:
    """Write snapshot 0 (about ``5 * num_entities`` facts) and 4 growth snapshots (+5% facts each) in the dataset
    layout (``out/<n>/{train,valid,test}.txt``, 90/5/5, new facts only) with readable names; returns counts."""
    rng = np.random.default_rng(seed)
    total_entities = int(num_entities * (1 + GROWTH) ** GROWTH_SNAPSHOTS) + 1
    clusters = max(8, num_entities // 2500)
    cluster = rng.integers(0, clusters, size=total_entities)
    popularity = 1.0 + rng.pareto(1.2, size=total_entities)  # long-tailed degrees
    frequency = 1.0 / np.arange(1, NUM_RELATIONS + 1) ** 0.8
    relations = {
        "head_cluster": rng.integers(0, clusters, size=NUM_RELATIONS),
        "tail_cluster": rng.integers(0, clusters, size=NUM_RELATIONS),
        "kind": rng.choice(3, size=NUM_RELATIONS, p=[0.6, 0.25, 0.15]),  # sampled, functional, symmetric
        "frequency": frequency / frequency.sum(),
    }
    symmetric = relations["kind"] == 2
    relations["tail_cluster"][symmetric] = relations["head_cluster"][symmetric]

    key_base = np.int64(total_entities)
    known = np.empty(0, dtype=np.int64)
    counts = []
    entities_now = num_entities
    for snapshot in range(GROWTH_SNAPSHOTS + 1):
        if snapshot == 0:
            wanted = FACTS_PER_ENTITY * num_entities
            grown = entities_now
        else:
            wanted = int(round(GROWTH * len(known)))
            grown = int(round(entities_now * (1 + GROWTH)))
        facts = np.empty((0, 3), dtype=np.int64)
        while len(facts) < wanted:
            need = int((wanted - len(facts)) * 1.2) + 16
            pool = popularity[:grown], cluster[:grown]
            if snapshot == 0:
                candidate = _grow(rng, count=need, popularity=pool[0], cluster=pool[1], relations=relations)
            else:
                half = need // 2
                old = _grow(
                    rng,
                    count=half,
                    popularity=pool[0][:entities_now],
                    cluster=pool[1][:entities_now],
                    relations=relations,
                )
                new = _grow(
                    rng,
                    count=need - half,
                    popularity=pool[0],
                    cluster=pool[1],
                    relations=relations,
                    new_from=entities_now,
                )
                candidate = np.concatenate([old, new])
            candidate = candidate[candidate[:, 0] != candidate[:, 2]]
            keys = (candidate[:, 0] * NUM_RELATIONS + candidate[:, 1]) * key_base + candidate[:, 2]
            keys, first = np.unique(keys, return_index=True)
            fresh = ~np.isin(keys, known)
            facts = np.concatenate([facts, candidate[first[fresh]]])
            known = np.union1d(known, keys[fresh])
        facts = facts[rng.permutation(len(facts))[:wanted]]
        entities_now = grown
        cut = [int(0.9 * len(facts)), int(0.95 * len(facts))]
        split = {"train": facts[: cut[0]], "valid": facts[cut[0] : cut[1]], "test": facts[cut[1] :]}
        folder = out / str(snapshot)
        folder.mkdir(parents=True, exist_ok=True)
        for name, rows in split.items():
            lines = [f"e{h}\tr{r}\te{t}" for h, r, t in rows.tolist()]
            (folder / f"{name}.txt").write_text("\n".join(lines) + "\n")
        counts.append({"snapshot": snapshot, "facts": int(len(facts)), "entities_bound": int(entities_now)})
    names = [f"e{i}\tthing {i}" for i in range(entities_now)]
    (out / "entity_names.tsv").write_text("\n".join(names) + "\n")
    (out / "relation_names.tsv").write_text("\n".join(f"r{i}\trelation {i}" for i in range(NUM_RELATIONS)) + "\n")
    return {"snapshots": counts, "clusters": clusters}


# --------------------------------------------------------------------------------------------- one size


def _epoch_seconds(stamps: list[float], entry: dict[str, Any]) -> float:
    """Mean of the pure training epochs 2..n-1 (between two epoch callbacks: no setup, no validation); with fewer
    than 3 epochs, train seconds per epoch."""
    if len(stamps) > 2:
        return round(float(np.mean(np.diff(stamps[:-1]))), 3)
    return round(entry["train_seconds"] / max(entry["epochs"], 1), 3)


def measure_one(size: int, *, dim: int, epochs: int, guide_questions: int, threads: int, work: Path) -> dict[str, Any]:
    """Everything for one size, in this process (run it in a fresh one: the peak RSS is the process's)."""
    import torch

    from evergraph.kg.engine.config import ModelConfig, RunConfig, TrainConfig
    from evergraph.kg.engine.lifelong import LifelongRun
    from evergraph.kg.engine.run_files import load_model_checkpoint, peak_rss_mb
    from evergraph.kg.store.bundle import Bundle
    from evergraph.kg.store.bundle_writer import write_bundle
    from evergraph.kg.store.index import EntityIndex, IndexConfig

    torch.set_num_threads(threads)
    result: dict[str, Any] = {"entities": size, "dim": dim, "epochs_per_snapshot": epochs, "threads": threads}
    git = ["git", "rev-parse", "--short", "HEAD"]
    result["commit"] = subprocess.run(git, capture_output=True, text=True, cwd=ROOT).stdout.strip()
    data, run = work / "data", work / "run"
    shutil.rmtree(work, ignore_errors=True)
    started = time.perf_counter()
    result["graph"] = write_growing_graph(data, num_entities=size)
    result["generate_s"] = round(time.perf_counter() - started, 1)

    stamps: dict[int, list[float]] = {}

    def on_epoch(snapshot: int, record: dict[str, float]) -> None:
        stamps.setdefault(snapshot, []).append(time.perf_counter())

    train = TrainConfig(max_epochs=epochs, eval_every=epochs, patience=1, seed=0, device="cpu")
    config = RunConfig(strategy="lkge", model=ModelConfig(dim=dim), train=train)
    started = time.perf_counter()
    metrics = LifelongRun(data=data, out=run, config=config, show_progress=False, on_epoch=on_epoch).run()
    result["run_s"] = round(time.perf_counter() - started, 1)
    entries = metrics["snapshots"]
    result["snapshots"] = [
        {
            "snapshot": e["snapshot"],
            "entities": e["num_entities"],
            "train_facts": e["train_facts"],
            "train_s": e["train_seconds"],
            "eval_s": e["eval_seconds"],
            "ranking": e.get("ranking", "full"),
            "mrr": round(e["stream"]["mrr"], 4),
            # epochs 2..n-1 are pure training epochs (no setup, no validation): their mean, else the first epoch
            "epoch_s": _epoch_seconds(stamps.get(e["snapshot"], []), e),
        }
        for e in entries
    ]
    growth = result["snapshots"][1:]
    result["epoch_s_snapshot0"] = result["snapshots"][0]["epoch_s"]
    result["epoch_s_growth"] = round(float(np.mean([g["epoch_s"] for g in growth])), 3)
    result["growth_snapshot_s"] = round(float(np.mean([g["train_s"] + g["eval_s"] for g in growth])), 2)
    result["eval_s_last"] = entries[-1]["eval_seconds"]
    result["ranking_last"] = entries[-1].get("ranking", "full")

    last = len(entries) - 1
    started = time.perf_counter()
    bundle_dir = write_bundle(run_dir=run, snapshot=last, dest=work / "bundle", version="1")
    result["bundle_write_s"] = round(time.perf_counter() - started, 2)
    result["bundle_mb"] = round(sum(p.stat().st_size for p in bundle_dir.iterdir()) / 2**20, 1)
    for mmap in (True, False):
        started = time.perf_counter()
        Bundle.load(bundle_dir, mmap=mmap)
        result[f"bundle_load_s_{'mmap' if mmap else 'read'}"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    Bundle.load(bundle_dir, verify=False)
    result["bundle_load_s_mmap_noverify"] = round(time.perf_counter() - started, 2)

    model, _ = load_model_checkpoint(run / "checkpoints" / f"snapshot-{last}.pt")
    for name, factory in (("flat", "Flat"), ("hnsw", "HNSW32")):
        started = time.perf_counter()
        index = EntityIndex.build(model, config=IndexConfig(factory=factory, min_recall=0.0, use_gpu=False))
        result[f"index_{name}_s"] = round(time.perf_counter() - started, 2)  # HNSW: includes the recall check
        result[f"recall10_{name}"] = index.recall_at_10

    if guide_questions:
        from evergraph.kg.knowledge.knowledge import Knowledge

        started = time.perf_counter()
        knowledge = Knowledge.load(bundle_dir)
        result["knowledge_load_s"] = round(time.perf_counter() - started, 2)
        rng = np.random.default_rng(1)
        ids = rng.choice(model.num_entities, size=guide_questions + 3, replace=False)
        rels = rng.integers(0, NUM_RELATIONS, size=guide_questions + 3)
        latencies = []
        for i, (e, r) in enumerate(zip(ids.tolist(), rels.tolist(), strict=True)):
            started = time.perf_counter()
            knowledge.guide(f"Which entity has relation {r} with thing {e}?")
            if i >= 3:  # three warm-up questions
                latencies.append(time.perf_counter() - started)
        result["guide_p50_ms"] = round(1000 * float(np.median(latencies)), 1)
        result["guide_p95_ms"] = round(1000 * float(np.percentile(latencies, 95)), 1)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result


# --------------------------------------------------------------------------------------------- report


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["entities"] for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (
        ("epoch_s_snapshot0", "epoch, snapshot 0 (s)"),
        ("epoch_s_growth", "epoch, growth snapshot (s)"),
        ("growth_snapshot_s", "growth snapshot, train+eval (s)"),
        ("eval_s_last", "evaluation, last snapshot (s)"),
        ("index_flat_s", "index build, Flat (s)"),
        ("index_hnsw_s", "index build, HNSW32 (s)"),
        ("bundle_load_s_mmap", "bundle load, mmap (s)"),
    ):
        left.loglog(sizes, [max(r.get(key, 0) or 0, 1e-3) for r in results], marker="o", label=label)
    left.set_xlabel("entities (generator size, snapshot 0)")
    left.set_ylabel("seconds")
    left.set_title("time")
    left.legend(fontsize=7)
    right.loglog(sizes, [r["peak_rss_mb"] for r in results], marker="o", label="peak RSS (MB)")
    right.loglog(sizes, [r["bundle_mb"] for r in results], marker="s", label="bundle size (MB)")
    right.set_xlabel("entities (generator size, snapshot 0)")
    right.set_ylabel("MB")
    right.set_title("memory")
    right.legend(fontsize=7)
    fig.suptitle("bench/scale.py: synthetic growing graph (reduced setting, see RESULTS.md)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def report(results: list[dict[str, Any]], *, dim: int, epochs: int, commit: str) -> str:
    lines = [
        "## Scale (`bench/scale.py`, issue 11)",
        "",
        f"Commit {commit} (of the sizes in order), {dt.date.today()}, {platform.machine()}, a 2-core CPU shared "
        "with other jobs (timings are "
        f"noisy upward), torch threads {results[0].get('threads', 1)}. **Reduced setting**: TransE, "
        f"dim {dim}, lkge, {epochs} epochs per snapshot (no early stopping: validation once at the end), seed 0; "
        f"synthetic graph with {NUM_RELATIONS} relations, ~{FACTS_PER_ENTITY} facts per entity in snapshot 0, then "
        f"{GROWTH_SNAPSHOTS} growth snapshots of +{GROWTH:.0%} facts (half about {GROWTH:.0%} new entities), 90/5/5 "
        "splits. Evaluation: protocol all-entities; full filtered ranking up to 100k entities, above it sampled "
        "(1000 candidates per query, OGB-wikikg2 style) as the `ranking` column says: the two are not comparable. "
        "Plot: `bench/scale.png` (log-log).",
        "",
        "| entities: nominal (in training at s0 / s4) | facts s0 "
        "| epoch s0 (s) | epoch growth (s) | growth snapshot train+eval (s) | eval last (s) "
        "| ranking | MRR last | peak RSS (MB) | bundle (MB) | bundle load mmap / read (s) | Flat / HNSW32 build (s) "
        "| HNSW recall@10 | guide p50 / p95 (ms) | whole run (s) |",
        "|" + "---|" * 15,
    ]
    for r in results:
        s0 = r["snapshots"][0]
        guide = f"{r['guide_p50_ms']} / {r['guide_p95_ms']}" if "guide_p50_ms" in r else "not measured"
        lines.append(
            f"| {r['entities']:,} ({s0['entities']:,} / {r['snapshots'][-1]['entities']:,}) "
            f"| {r['graph']['snapshots'][0]['facts']:,} | {r['epoch_s_snapshot0']} "
            f"| {r['epoch_s_growth']} | {r['growth_snapshot_s']} | {r['eval_s_last']} | {r['ranking_last']} "
            f"| {r['snapshots'][-1]['mrr']} | {r['peak_rss_mb']:,.0f} | {r['bundle_mb']} "
            f"| {r['bundle_load_s_mmap']} / {r['bundle_load_s_read']} | {r['index_flat_s']} / {r['index_hnsw_s']} "
            f"| {r['recall10_hnsw']} | {guide} | {r['run_s']} |"
        )
    lines += [
        "",
        "Columns: *entities* is the generator's size; fewer of them occur in training facts (long tail), and those "
        "are the model's entities and the evaluation's candidates. "
        "*epoch* is the mean of the pure training epochs (between two epoch callbacks, no validation) of "
        "snapshot 0 and of the growth snapshots (lkge trains a growth snapshot on its new facts; the dense Adam "
        "step and the regulariser still touch the whole table); *growth snapshot* is train + evaluation seconds "
        "per growth snapshot (mean of 4); *eval last* is the stream evaluation after the last snapshot (all test "
        "sets); a growth epoch covers that size's new facts (5% of its facts), not the same facts at every size. "
        "Bundle load includes the SHA-256 check of every file. Index build times are on the last model; the "
        "HNSW32 time includes its recall@10 measurement (1000 query vectors of random (entity, relation) pairs vs "
        "exact `faiss.knn`). Guide: p50/p95 of `Knowledge.guide` on template questions naming a random entity "
        "(3 warm-ups), the default encoders (hashing for entities, the sentence encoder for relations). *MRR last* is "
        "no quality figure: 3 epochs only, and full and sampled ranking are not comparable (a sampled rank is at most "
        "1,001); the bench measures cost. "
        "2,000 and 20,000 entities ran without the heavy-job lock (each run under 30 s of training), 200,000 under "
        "it. In the plot, times below 1 ms (the Flat build) are drawn at 1 ms.",
        "",
        "Not measured: the 1M-entity size (not run: the shared heavy-job lock and the session's time did not "
        "allow it), server throughput at 1/16/64 clients, the ENTITY lkge-vs-retrain saving, the GPU run, the "
        "issue's targets (an epoch over the same new facts in 1M vs 20k; the whole 1M run <= 60 min / 8 GB) "
        "are therefore not checked.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20000,200000", help="entities of snapshot 0, comma-separated")
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per snapshot (>= 3 to time a pure epoch)")
    parser.add_argument("--guide-questions", type=int, default=30)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: 2 threads on 2 shared cores run far slower)"
    )
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing RESULTS.md")
    parser.add_argument(
        "--from-json", action="store_true", help="report the sizes measured before (bench/runs/scale/nSIZE.json)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    if args.one is not None:  # the child: one size in this fresh process
        result = measure_one(
            args.one,
            dim=args.dim,
            epochs=args.epochs,
            guide_questions=args.guide_questions,
            threads=args.threads,
            work=RUNS / f"n{args.one}",
        )
        args.json.write_text(json.dumps(result, indent=1))
        return 0

    RUNS.mkdir(parents=True, exist_ok=True)
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        target = RUNS / f"n{size}.json"
        if args.from_json:
            results.append(json.loads(target.read_text()))
            continue
        command = [
            sys.executable,
            __file__,
            "--one",
            str(size),
            "--json",
            str(target),
            "--dim",
            str(args.dim),
            "--epochs",
            str(args.epochs),
            "--guide-questions",
            str(args.guide_questions),
            "--threads",
            str(args.threads),
        ]
        logger.info("size %d: %s", size, " ".join(command))
        subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
        results.append(json.loads(target.read_text()))
        logger.info("size %d: %s", size, json.dumps({k: v for k, v in results[-1].items() if k != "snapshots"}))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    dim, epochs = results[0]["dim"], results[0]["epochs_per_snapshot"]  # as measured
    commits = " / ".join(dict.fromkeys(r.get("commit", commit.strip()) for r in results))  # per size, in order
    body = report(results, dim=dim, epochs=epochs, commit=commits)
    if args.no_write:
        print(body)
        return 0
    plot(results, PLOT)
    write_section("scale", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
