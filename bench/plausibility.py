"""Plausibility benchmark (issue 10): triple classification on type-consistent hard negatives per interaction, and
the ``hold`` policy on a snapshot with 5% injected corrupted facts; writes the ``plausibility`` section of
``bench/RESULTS.md``.

The graph is ENTITY (LKGE's growing FB15k-237) up to ``--snapshot`` (the issue: 4). Each of ``--models`` is
trained there by the engine (strategy ``lkge``; on this 2-core shared CPU with reduced ``--dim`` / ``--epochs``)
under ``bench/runs/``; ``--runs`` adds existing engine runs (read from a private copy, never written into). For
each model's bundle the plausibility filter is fitted on the validation facts up to the snapshot and their hard
negatives, then measured:

- **hard negatives** (as in the issue): each test fact's tail replaced by an entity that appeared in that
  relation's tail position, drawn again while the result is a known (train/valid/test) fact;
- **accuracy / F1** of "probability >= 0.5" on the test facts up to the snapshot + their hard negatives;
- **hold** at its default threshold (suspect = probability < 0.5): precision / recall of the suspects;
- **injection**: the next snapshot's new facts about known entities with 5% hard negatives injected: share of
  the injected facts held, share of the true facts held (goal: >= 80% and <= 5%).

    flock /tmp/evergraph-heavy.lock python bench/plausibility.py [--snapshot 4] [--models transe distmult complex
        rotate] [--dim 64] [--epochs 30] [--runs bench/runs/ENTITY-lkge-lkge-paper] [--max-test 20000] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._results import write_section  # noqa: E402
from evergraph.kg.engine.config import ModelConfig, RunConfig, TrainConfig  # noqa: E402
from evergraph.kg.engine.ingest import GrowingKG  # noqa: E402
from evergraph.kg.engine.lifelong import LifelongRun  # noqa: E402
from evergraph.kg.knowledge.plausibility import (  # noqa: E402
    PlausibilityModel,
    Verdict,
    check_facts,
    fit_plausibility,
    hard_negatives,
    in_bundle_ids,
)
from evergraph.kg.store.bundle import Bundle  # noqa: E402
from evergraph.kg.store.bundle_writer import write_bundle  # noqa: E402

logger = logging.getLogger("bench.plausibility")
DATA = Path("/work/shared/data/lkge/ENTITY")
RUNS = Path(__file__).resolve().parent / "runs"
ANCHORS = "TransE .797, ComplEx .824, ConvE .826 accuracy on CoDEx-M hard negatives (LibKGE; Safavi & Koutra 2020)"


def train(model: str, *, snapshot: int, dim: int, epochs: int) -> Path:
    """An engine run of ``model`` (strategy ``lkge``) on ENTITY up to ``snapshot`` (reduced: ``dim``, ``epochs``)."""
    out = RUNS / f"plausibility-{model}-s{snapshot}-d{dim}-e{epochs}"
    config = RunConfig(
        strategy="lkge",
        protocol="lkge-paper",
        model=ModelConfig(name=model, dim=dim),
        train=TrainConfig(max_epochs=epochs, eval_every=5, patience=2, seed=0, device="cpu"),
    )
    LifelongRun(data=DATA, out=out, config=config, show_progress=False).run(upto=snapshot)
    return out


def copy_run(run: Path, snapshot: int) -> Path:
    """A private copy of what a bundle needs from someone else's run directory (never written into)."""
    dest = RUNS / f"plausibility-copy-{run.name}-s{snapshot}"
    if not (dest / "metrics.json").is_file():
        (dest / "checkpoints").mkdir(parents=True, exist_ok=True)
        shutil.copy(run / "checkpoints" / f"snapshot-{snapshot}.pt", dest / "checkpoints")
        shutil.copytree(run / "vocab", dest / "vocab", dirs_exist_ok=True)
        shutil.copy(run / "config.json", dest / "config.json")
        metrics = json.loads((run / "metrics.json").read_text())
        metrics["snapshots"] = [e for e in metrics["snapshots"] if e["snapshot"] <= snapshot]
        (dest / "metrics.json").write_text(json.dumps(metrics))
    return dest


def bundle_of(run: Path, snapshot: int) -> Bundle:
    dest = run / f"bundle-{snapshot}"
    if not dest.exists():
        write_bundle(run_dir=run, snapshot=snapshot, dest=dest, version=run.name)
    return Bundle.load(dest)


def measure(bundle: Bundle, *, kg: GrowingKG, snapshot: int, max_test: int) -> dict[str, float]:
    """Triple classification on the test facts of snapshots ``0..snapshot`` and hold on snapshot + 1."""
    generator = torch.Generator().manual_seed(0)
    valid = in_bundle_ids(bundle, kg, torch.cat([s.valid for s in kg.snapshots[: snapshot + 1]]))
    started = time.perf_counter()
    plausibility = fit_plausibility(model=bundle.model, facts=bundle.facts, valid=valid, version="bench")
    fit_seconds = time.perf_counter() - started
    test = in_bundle_ids(bundle, kg, torch.cat([s.test for s in kg.snapshots[: snapshot + 1]]))
    if len(test) > max_test:
        test = test[torch.randperm(len(test), generator=generator)[:max_test]]
    true = in_bundle_ids(bundle, kg, torch.cat([s.facts for s in kg.snapshots]))
    negatives = hard_negatives(test, facts=bundle.facts, true=true, generator=generator)

    def check(rows: torch.Tensor) -> list:
        triples = [tuple(x) for x in rows.tolist()]
        return check_facts(plausibility, model=bundle.model, facts=bundle.facts, triples=triples)

    started = time.perf_counter()
    pos, neg = check(test), check(negatives)
    check_ms = 1000 * (time.perf_counter() - started) / (len(pos) + len(neg))
    tp = sum(v.probability >= 0.5 for v in pos)  # true facts accepted
    tn = sum(v.probability < 0.5 for v in neg)  # false facts rejected
    fp, fn = len(neg) - tn, len(pos) - tp
    # hold on the next snapshot: its new facts about entities the champion knows, plus 5% hard negatives
    new = in_bundle_ids(bundle, kg, kg.snapshots[snapshot + 1].facts) if snapshot + 1 < len(kg.snapshots) else test[:0]
    new_from = f"snapshot {snapshot + 1}"
    if len(new) < 100:  # ENTITY grows by entities: hardly any new fact is about known entities only
        new, new_from = test, "test facts"
    new_negatives = hard_negatives(new, facts=bundle.facts, true=true, generator=generator)
    inject = new_negatives[: max(1, round(0.05 * len(new) / 0.95))]
    new_checked, injected = check(new), check(inject)
    combined = operating_point(new_checked, injected, probability=lambda v: v.probability)
    score_only = operating_point(new_checked, injected, probability=lambda v: score_probability(plausibility, v))
    return {
        "accuracy": (tp + tn) / (len(pos) + len(neg)),
        "f1": 2 * tp / max(2 * tp + fp + fn, 1),
        "hold_precision": tn / max(tn + fn, 1),
        "hold_recall": tn / max(len(neg), 1),
        "new_facts": len(new_checked),
        "new_from": new_from,
        "injected": len(injected),
        "injected_held": sum(v.suspect for v in injected) / max(len(injected), 1),
        "true_held": sum(v.suspect for v in new_checked) / max(len(new_checked), 1),
        "injected_held_at_5": combined[0],
        "cut_at_5": combined[1],
        "injected_held_at_5_score_only": score_only[0],
        "test": len(pos),
        "negatives": len(neg),
        "fit_seconds": fit_seconds,
        "check_ms": check_ms,
        "dim": bundle.model.dim,
    }


def score_probability(plausibility: PlausibilityModel, verdict: Verdict) -> float:
    """The probability from the embedding score alone (no type or functional-relation signal)."""
    if verdict.score is None or verdict.threshold is None:
        return 0.5
    return 1 / (1 + math.exp(-(plausibility.slope * (verdict.score - verdict.threshold) + plausibility.bias)))


def operating_point(
    true: list[Verdict], injected: list[Verdict], *, probability: Callable[[Verdict], float | None], share: float = 0.05
) -> tuple[float, float]:
    """The share of ``injected`` held at the threshold that holds ``share`` (5%) of the ``true`` facts, and that
    threshold (facts without a probability are never held)."""
    p_true = torch.tensor([1.0 if probability(v) is None else float(probability(v)) for v in true])
    p_injected = torch.tensor([1.0 if probability(v) is None else float(probability(v)) for v in injected])
    if not len(p_true) or not len(p_injected):
        return 0.0, 0.0
    cut = float(torch.quantile(p_true, share))
    return float((p_injected < cut).float().mean()), cut


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["transe", "distmult", "complex", "rotate"])
    parser.add_argument("--snapshot", type=int, default=4, help="the graph: ENTITY up to this snapshot")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--runs", nargs="*", type=Path, default=[], help="existing engine runs to measure as well")
    parser.add_argument("--max-test", type=int, default=20000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not DATA.is_dir():
        sys.exit(f"{DATA} is missing: this benchmark needs the LKGE ENTITY data")
    torch.set_num_threads(2)
    kg = GrowingKG.load(DATA)
    results: dict[str, dict] = {}
    stored = RUNS / f"plausibility-results-s{args.snapshot}.json"
    if stored.is_file():
        results = json.loads(stored.read_text())
    for run in args.runs:
        bundle = bundle_of(copy_run(run, args.snapshot), args.snapshot)
        name = f"{bundle.model.interaction_name} ({run.name}, dim {bundle.model.dim})"
        results[name] = measure(bundle, kg=kg, snapshot=args.snapshot, max_test=args.max_test)
        stored.write_text(json.dumps(results, indent=2))
    for model in args.models:
        started = time.perf_counter()
        out = train(model, snapshot=args.snapshot, dim=args.dim, epochs=args.epochs)
        seconds = time.perf_counter() - started
        bundle = bundle_of(out, args.snapshot)
        name = f"{model} (lkge, dim {args.dim}, <= {args.epochs} epochs)"
        results[name] = {**measure(bundle, kg=kg, snapshot=args.snapshot, max_test=args.max_test), "train_s": seconds}
        logger.info("%s: %s", name, json.dumps(results[name]))
        stored.write_text(json.dumps(results, indent=2))
    if args.no_write:
        print(json.dumps(results, indent=2))
        return
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    setting = (
        f"The graph is ENTITY up to snapshot {args.snapshot}, as the issue asks"
        if args.snapshot == 4
        else f"**Reduced setting**: the graph is ENTITY up to snapshot {args.snapshot} (the issue asks for 4)"
    )
    lines = [
        "## Plausibility filter (issue 10): triple classification and hold",
        "",
        f"`python bench/plausibility.py --snapshot {args.snapshot}` at {commit}, {dt.date.today()}, "
        f"{platform.machine()}, a 2-core CPU shared with other jobs. {setting}; each row names its model (runs "
        "trained here with reduced dim/epochs, or an existing engine run). Thresholds per relation fitted on the "
        "validation facts of those snapshots and their type-consistent hard negatives; classification measured on "
        f"their test facts (at most {args.max_test}) and as many hard negatives (tail replaced by an entity seen in "
        "that relation's tail position, known facts removed). Hold: the new facts of the next snapshot about "
        "entities the model knows (ENTITY grows by entities, so almost every new fact has a new entity the "
        "embeddings cannot score; after the last snapshot there is none: then the held-out test facts stand in "
        "for the new snapshot), with 5% hard negatives injected. Published anchors: " + ANCHORS + ".",
        "",
        "| model | accuracy | F1 | hold precision | hold recall | injected 5%: held | true new facts held | "
        "injected held when 5% of true are (combined / score only) | fit s | check ms/fact |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        at5 = (
            f"{r['injected_held_at_5']:.3f} / {r['injected_held_at_5_score_only']:.3f} (p < {r['cut_at_5']:.2f})"
            if "injected_held_at_5" in r
            else "-"
        )
        lines.append(
            f"| {name} | {r['accuracy']:.3f} | {r['f1']:.3f} | {r['hold_precision']:.3f} | {r['hold_recall']:.3f} "
            f"| {r['injected_held']:.3f} ({r['injected']}) | {r['true_held']:.3f} ({r['new_facts']} {r['new_from']}) "
            f"| {at5} | {r['fit_seconds']:.1f} | {r['check_ms']:.2f} |"
        )
    goal = [m for m, r in results.items() if r["injected_held"] >= 0.8 and r["true_held"] <= 0.05]
    lines += [
        "",
        "Goal of the issue for `hold` (>= 80% of the injected corrupted facts kept out, <= 5% of the true new facts "
        f"held): {'met by ' + ', '.join(goal) if goal else 'not met by any model in this setting'}. "
        "Hold precision/recall count the suspects (probability < 0.5) among the test facts and their hard negatives "
        "(balanced: one negative per true fact). The column before last moves the threshold until only 5% of the "
        "true facts are held and says how many injected facts are then held: with the three signals combined "
        "(embedding score, types, functional relations: what `hold` uses) and with the score alone. Types cannot "
        "separate these negatives by construction (their tails were seen in that relation's tail position); "
        "functional relations catch only negatives of relations whose heads have one tail.",
    ]
    write_section("plausibility", "\n".join(lines))


if __name__ == "__main__":
    main()
