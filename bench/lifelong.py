"""Lifelong benchmark on the LKGE growing-KG datasets (``../shared/data/lkge``); writes ``bench/RESULTS.md``.

Each (dataset, strategy) run is a separate ``evergraph train`` process, so its peak memory is its own. Also
times training epochs on ENTITY snapshot 0 (plain, + masked autoencoder, + regularisation).

    python bench/lifelong.py                              # ENTITY: lkge, finetune, retrain; RELATION, FACT: lkge
    python bench/lifelong.py --datasets ENTITY --strategies lkge --max-epochs 50
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._results import RESULTS, write_section  # noqa: E402
from evergraph.kg.engine.config import RunConfig  # noqa: E402
from evergraph.kg.engine.ingest import GrowingKG, list_snapshot_dirs  # noqa: E402
from evergraph.kg.engine.model import doubled_triples  # noqa: E402
from evergraph.kg.engine.strategies import SnapshotContext, get_strategy  # noqa: E402
from evergraph.kg.engine.training import link_prediction_loss, make_optimizer  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "lkge"
RUNS = ROOT / "bench" / "runs"
TIMINGS = RUNS / "epoch-timings.json"
DEFAULT_STRATEGIES = ("lkge", "finetune", "retrain")
logger = logging.getLogger("bench")

PUBLISHED = {  # MRR / H@1 / H@10 after the last snapshot, paper protocol
    "ENTITY": {"Fine-tune": (0.165, 0.085, 0.321), "LKGE": (0.234, 0.136, 0.425), "IncDE": (0.253, 0.151, 0.448)},
    "RELATION": {"Fine-tune": (0.093, 0.039, 0.195), "LKGE": (0.192, 0.106, 0.366), "IncDE": (0.199, 0.111, 0.370)},
    "FACT": {"Fine-tune": (0.172, 0.090, 0.339), "LKGE": (0.210, 0.122, 0.387), "IncDE": (0.216, 0.128, 0.391)},
}


def run_strategy(dataset: str, strategy: str, *, protocol: str, extra: list[str], label: str | None = None) -> dict:
    out = RUNS / f"{dataset}-{label or strategy}-{protocol}"
    cmd = [
        sys.executable,
        "-m",
        "evergraph.kg.service.cli",
        "train",
        "--data",
        str(DATA / dataset),
        "--out",
        str(out),
        "--strategy",
        strategy,
        "--protocol",
        protocol,
        "--quiet",
        *extra,
    ]
    logger.info("running %s", " ".join(cmd))
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return json.loads((out / "metrics.json").read_text())


def epoch_timings(dataset: str = "ENTITY", epochs: int = 5) -> dict[str, float]:
    """Seconds per training epoch on snapshot 0: link prediction only, + MAE, + MAE + regularisation."""
    kg = GrowingKG.load(DATA / dataset, upto=0)
    out = {}
    defaults = RunConfig(strategy="lkge").lkge
    for label, mae, reg in (
        ("plain", 0.0, 0.0),
        ("+ autoencoder", defaults.reconstruction_weight, 0.0),
        ("+ autoencoder + regularisation", defaults.reconstruction_weight, defaults.regularization_weight),
    ):
        config = RunConfig(strategy="lkge")
        config.lkge.reconstruction_weight, config.lkge.regularization_weight = mae, reg
        gen = torch.Generator().manual_seed(0)
        ctx = SnapshotContext(kg=kg, index=0, device=torch.device("cpu"), generator=gen)
        strategy = get_strategy(config)
        model = strategy.prepare(None, ctx)
        if reg:  # pretend snapshot 0 was already learned, so the regulariser is active
            strategy.finish(model, ctx)
            model = strategy.prepare(model, ctx)
        opt = make_optimizer(model, config.train.lr)
        triples = doubled_triples(kg.snapshots[0].train)
        n, bs = triples.shape[0], config.train.batch_size
        times = []
        for _ in range(epochs):
            t0 = time.perf_counter()
            order = torch.randperm(n, generator=gen)
            for s in range(0, n, bs):
                batch = triples[order[s : s + bs]]
                neg = torch.randint(model.num_entities, (batch.shape[0], config.train.num_negatives), generator=gen)
                loss = link_prediction_loss(
                    model, batch, neg, margin=config.train.margin, temperature=config.train.adversarial_temperature
                )
                extra = strategy.extra_loss(model, batch, ctx)
                if extra is not None:
                    loss = loss + extra
                opt.zero_grad(set_to_none=True)
                loss.backward()
                strategy.add_gradients(model)
                opt.step()
            times.append(time.perf_counter() - t0)
        out[label] = sorted(times)[len(times) // 2]
    return out


def fmt(x: float) -> str:
    return f"{x:.3f}"


def report(results: dict[str, dict[str, dict]], timings: dict[str, float] | None, protocol: str) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    lines = [
        "## Lifelong learning (`bench/lifelong.py`)",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; commit {commit.strip() or 'unknown'}",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), CUDA: {torch.cuda.is_available()}",
        f"- protocol: `{protocol}` (filtered, realistic ranks, both directions, test-size-weighted over all test sets "
        "seen so far); defaults of `kg.RunConfig` unless noted",
        "",
    ]
    if timings:
        lines += [
            "### Training epoch, ENTITY snapshot 0 (27,832 facts + inverses, dim 200, 10 negatives, batch 2048)",
            "",
            "| loss | seconds per epoch (median of 5) |",
            "|---|---|",
        ]
        lines += [f"| {k} | {v:.3f} |" for k, v in timings.items()]
        lines.append("")
    for dataset, by_strategy in results.items():
        lines += [
            f"### {dataset}",
            "",
            "| strategy | MRR | H@1 | H@3 | H@10 | train s | eval s | eval s at last snapshot | peak RSS MB "
            "| epochs per snapshot |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for strategy, m in by_strategy.items():
            snaps = m["snapshots"]
            last = snaps[-1]["stream"]
            lines.append(
                f"| {strategy} | {fmt(last['mrr'])} | {fmt(last['hits@1'])} | {fmt(last['hits@3'])} | "
                f"{fmt(last['hits@10'])} | {sum(s['train_seconds'] for s in snaps):.0f} | "
                f"{sum(s['eval_seconds'] for s in snaps):.0f} | {snaps[-1]['eval_seconds']:.1f} | "
                f"{max(s['peak_rss_mb'] for s in snaps):.0f} | "
                f"{' / '.join(str(s['epochs']) for s in snaps)} |"
            )
        for name, (mrr, h1, h10) in PUBLISHED.get(dataset, {}).items():
            lines.append(f"| published {name} | {mrr:.3f} | {h1:.3f} | | {h10:.3f} | | | | | |")
        lines.append("")
        lines += ["MRR on each test set after each snapshot (rows: after snapshot i; columns: test set j):", ""]
        for strategy, m in by_strategy.items():
            lines += [
                f"`{strategy}`:",
                "",
                "| after | " + " | ".join(f"T{j}" for j in range(len(m["snapshots"]))) + " | stream |",
                "|---" * (len(m["snapshots"]) + 2) + "|",
            ]
            for s in m["snapshots"]:
                per = {p["snapshot"]: p["mrr"] for p in s["per_test_set"]}
                cells = [fmt(per[j]) if j in per else "" for j in range(len(m["snapshots"]))]
                lines.append(f"| {s['snapshot']} | " + " | ".join(cells) + f" | {fmt(s['stream']['mrr'])} |")
            lines.append("")
    lines += targets(results, timings)
    return "\n".join(lines) + "\n"


def targets(results: dict[str, dict[str, dict]], timings: dict[str, float] | None) -> list[str]:
    """The goals of the engine's issue, each with what was measured here and whether it is met."""
    rows: list[tuple[str, str, bool]] = []

    def final(m: dict) -> float:
        return m["snapshots"][-1]["stream"]["mrr"]

    def train_seconds(m: dict) -> float:
        return sum(s["train_seconds"] for s in m["snapshots"])

    for dataset, by_strategy in results.items():
        if "lkge" in by_strategy and dataset in PUBLISHED:
            incde = PUBLISHED[dataset]["IncDE"][0]
            rows.append(
                (
                    f"{dataset}: lkge final MRR >= IncDE {incde:.3f}",
                    f"{final(by_strategy['lkge']):.3f}",
                    final(by_strategy["lkge"]) >= incde,
                )
            )
        if {"lkge", "finetune"} <= set(by_strategy):
            got, ft = final(by_strategy["lkge"]), final(by_strategy["finetune"])
            rows.append((f"{dataset}: lkge >= finetune + 0.03", f"{got:.3f} vs {ft:.3f}", got >= ft + 0.03))
        if {"lkge", "retrain"} <= set(by_strategy):
            got, rt = final(by_strategy["lkge"]), final(by_strategy["retrain"])
            rows.append(
                (f"{dataset}: lkge final MRR within 0.01 of retrain", f"{got:.4f} vs {rt:.4f}", abs(got - rt) <= 0.01)
            )
            ratio = train_seconds(by_strategy["lkge"]) / train_seconds(by_strategy["retrain"])
            rows.append((f"{dataset}: lkge training time <= 1/3 of retrain", f"{ratio:.2f}x", ratio <= 1 / 3))
        if "lkge" in by_strategy:
            snaps = by_strategy["lkge"]["snapshots"]
            total = train_seconds(by_strategy["lkge"]) + sum(s["eval_seconds"] for s in snaps)
            if dataset == "ENTITY":
                rows.append(
                    ("ENTITY: whole lkge run, evaluation included, <= 8 min", f"{total / 60:.1f} min", total <= 480)
                )
                rows.append(
                    (
                        "ENTITY: evaluation pass over all test sets at snapshot 4 <= 10 s",
                        f"{snaps[-1]['eval_seconds']:.1f} s",
                        snaps[-1]["eval_seconds"] <= 10,
                    )
                )
            peak = max(s["peak_rss_mb"] for s in snaps)
            rows.append((f"{dataset}: peak memory of the lkge run <= 2 GB", f"{peak:.0f} MB", peak <= 2048))
    if timings:
        full = timings["+ autoencoder + regularisation"]
        rows.append(
            (
                "training epoch on ENTITY snapshot 0 with autoencoder and regularisation <= 0.6 s",
                f"{full:.2f} s",
                full <= 0.6,
            )
        )
    if not rows:
        return []
    out = ["### Targets", "", "| target | measured | met |", "|---|---|---|"]
    out += [f"| {name} | {value} | {'yes' if ok else '**no**'} |" for name, value, ok in rows]
    return [*out, ""]


def collect_results(protocol: str) -> dict[str, dict[str, dict]]:
    """Every finished run in ``bench/runs`` for ``protocol``, by dataset, then by strategy (default options
    first, then runs with a ``--label``, named ``strategy label``). Unfinished runs are left out."""
    results: dict[str, dict[str, dict]] = {}
    for dataset in PUBLISHED:
        if not (DATA / dataset).is_dir():
            continue
        expected = len(list_snapshot_dirs(DATA / dataset))
        found: dict[str, dict] = {}
        for path in sorted(RUNS.glob(f"{dataset}-*-{protocol}/metrics.json")):
            metrics = json.loads(path.read_text())
            if len(metrics["snapshots"]) != expected:
                continue
            name = path.parent.name[len(dataset) + 1 : -len(protocol) - 1]
            strategy, _, label = name.partition("-")
            found[f"{strategy} {label}".strip()] = metrics
        ordered = [s for s in DEFAULT_STRATEGIES if s in found] + sorted(set(found) - set(DEFAULT_STRATEGIES))
        if ordered:
            results[dataset] = {key: found[key] for key in ordered}
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="ENTITY,RELATION,FACT")
    parser.add_argument("--strategies", default=None, help="default: lkge,finetune,retrain on ENTITY, lkge elsewhere")
    parser.add_argument("--protocol", default="lkge-paper")
    parser.add_argument("--no-timings", action="store_true")
    parser.add_argument("--fresh", action="store_true", help="delete earlier runs first (otherwise they resume)")
    parser.add_argument("--label", default=None, help="name for runs with non-default options (their own run dir)")
    parser.add_argument("extra", nargs="*", help="passed to `evergraph train` after --")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not DATA.is_dir():
        logger.error("no benchmark data at %s", DATA)
        return 1
    if args.no_timings:
        timings = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else None
    else:
        timings = epoch_timings()
        RUNS.mkdir(parents=True, exist_ok=True)
        TIMINGS.write_text(json.dumps(timings, indent=2))
        logger.info("epoch timings: %s", timings)
    for dataset in args.datasets.split(","):
        strategies = args.strategies or ("lkge,finetune,retrain" if dataset == "ENTITY" else "lkge,finetune")
        for strategy in strategies.split(","):
            if args.fresh:
                import shutil

                shutil.rmtree(RUNS / f"{dataset}-{strategy}-{args.protocol}", ignore_errors=True)
            run_strategy(
                dataset,
                strategy,
                protocol=args.protocol,
                extra=args.extra,
                label=f"{strategy}-{args.label}" if args.label else None,
            )
    write_section("lifelong", report(collect_results(args.protocol), timings, args.protocol))
    logger.info("wrote %s", RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
