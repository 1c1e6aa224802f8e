"""Retraction and unlearning on ENTITY, and a folder of full exports through ``evergraph run``.

Writes the ``retraction`` section of ``bench/RESULTS.md``. Phases (each result cached in ``bench/runs/retraction``,
so a rerun continues; heavy phases take the shared lock ``/tmp/evergraph-heavy.lock`` one at a time):

1. a stream from ENTITY whose snapshots 2-4 retract 5% of the earlier train facts at random, and snapshot 2 every
   fact of 50 chosen entities (:mod:`bench.retraction_stream`); the same builder without retractions gives the
   reference stream (identical files for snapshots 0-1);
2. lkge on snapshots 0-1 once, then continued three ways: with unlearning, without unlearning (retracted facts are
   only no longer trained), and on the stream without retractions; ``retrain`` (exact unlearning) on the stream;
3. forgetting (filtered MRR on the retracted facts the model trained on), utility (MRR on the retained test facts,
   the reference model ranked on the same facts), cost (the unlearning phase vs retrain's training time);
4. 500 guide questions about entities whose facts were retracted: retracted facts cited (must be 0);
5. a 5-version export (N-Triples with rdfs:label names, and TSV) of the stream through ``evergraph run``, vs the
   equivalent lkge folder; N-Triples parse speed.

    python bench/retraction.py [--dim 100 --max-epochs 40] [--skip-dumps]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._results import write_section  # noqa: E402
from bench.retraction_stream import build_retraction_stream  # noqa: E402
from evergraph.kg.engine.config import LKGEConfig, ModelConfig, RunConfig, TrainConfig, UnlearningConfig  # noqa: E402
from evergraph.kg.engine.evaluation import RankingMetrics, filtered_ranks  # noqa: E402
from evergraph.kg.engine.ingest import SPLITS, GrowingKG  # noqa: E402
from evergraph.kg.engine.lifelong import LifelongRun  # noqa: E402
from evergraph.kg.engine.run_files import RunPaths, load_model_checkpoint  # noqa: E402
from evergraph.kg.engine.snapshot import fact_keys, retained  # noqa: E402
from evergraph.kg.engine.sources import DumpsSource  # noqa: E402
from evergraph.kg.engine.sources.rdf import read_rdf  # noqa: E402
from evergraph.kg.engine.unlearning import trained_removals  # noqa: E402

logger = logging.getLogger("bench.retraction")

SHARED = ROOT.parent / "shared" / "data"
ENTITY = SHARED / "lkge" / "ENTITY"
TEXT = SHARED / "fb15k237_text"
WORK = ROOT / "bench" / "runs" / "retraction"
LOCK = Path("/tmp/evergraph-heavy.lock")
LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
BASE = "http://rdf.freebase.com/ns"


USE_LOCK = True
PATIENCE = 2  # --patience


@contextlib.contextmanager
def heavy() -> Iterator[None]:
    """The shared lock of heavy jobs, held for one phase (not taken for the small example graph)."""
    if not USE_LOCK:
        yield
        return
    with LOCK.open("a") as handle:
        logger.info("waiting for %s", LOCK)
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached(name: str, compute: Any) -> Any:
    file = WORK / f"{name}.json"
    if file.exists():
        return json.loads(file.read_text())
    value = compute()
    file.write_text(json.dumps(value, indent=1))
    return value


def config(strategy: str, *, dim: int, max_epochs: int, unlearn: bool = True) -> RunConfig:
    return RunConfig(
        strategy=strategy,
        model=ModelConfig(dim=dim),
        train=TrainConfig(max_epochs=max_epochs, eval_every=5, patience=PATIENCE, seed=0, device="cpu"),
        lkge=LKGEConfig(unlearning=UnlearningConfig(enabled=unlearn)),
    )


def run(data: Path, out: Path, cfg: RunConfig, *, upto: int | None = None) -> dict[str, Any]:
    with heavy():
        started = time.perf_counter()
        metrics = LifelongRun(data=data, out=out, config=cfg, show_progress=False).run(upto=upto)
        logger.info("%s up to %s: %.0fs", out.name, upto, time.perf_counter() - started)
    return metrics


def continue_from(shared: Path, out: Path, cfg: RunConfig) -> None:
    """Start ``out`` as a copy of the shared lkge run of snapshots 0-1 (the same data and the same training up to
    there), re-labelled with ``cfg``'s checksum so that it continues under ``cfg``."""
    if out.exists():
        return
    shutil.copytree(shared, out)
    stored = json.loads((out / "config.json").read_text())
    stored.update(cfg.model_dump(), checksum=cfg.checksum())
    (out / "config.json").write_text(json.dumps(stored))


# ------------------------------------------------------------------------------------------------ measuring


def model_at(run_dir: Path, snapshot: int) -> torch.nn.Module:
    model, _ = load_model_checkpoint(RunPaths(run_dir).snapshot_checkpoint(snapshot))
    return model


def mrr(model: Any, triples: torch.Tensor, known: torch.Tensor, candidates: int) -> float:
    if not len(triples):
        return float("nan")
    ranks = filtered_ranks(score_fn=model.score_fn(), triples=triples, known=known, num_candidates=candidates)
    return RankingMetrics.from_ranks(ranks.realistic).mrr


def forgetting(kg: GrowingKG, runs: dict[str, Path], forgotten: set[int]) -> dict[str, Any]:
    """Filtered MRR on the retracted facts the models trained on, after snapshots 2, 3 and 4."""
    trained = torch.cat([s.train for s in kg.snapshots])
    table: dict[str, Any] = {}
    for k in (2, 3, 4):
        gone = trained_removals(kg.retracted_facts(k), trained)
        of_entity = torch.isin(gone[:, 0], torch.tensor(sorted(forgotten))) | torch.isin(
            gone[:, 2], torch.tensor(sorted(forgotten))
        )
        parts = {"all": gone, "random 5%": gone[~of_entity], "50 entities": gone[of_entity]}
        known, candidates = kg.known_facts(k), kg.snapshots[k].num_entities
        table[str(k)] = {
            name: {part: mrr(model_at(run_dir, k), triples, known, candidates) for part, triples in parts.items()}
            for name, run_dir in runs.items()
        }
        table[str(k)]["facts"] = {part: len(triples) for part, triples in parts.items()}
    return table


def same_age(kg: GrowingKG, runs: dict[str, Path], forget: dict[str, Any]) -> dict[str, Any]:
    """Each model's MRR on *unseen* facts of the same age as the retracted ones: its per-test-set MRR after snapshot
    ``k`` (``metrics.json``), weighted by the snapshot whose train facts each retracted fact came from. Set beside
    the MRR on the retracted facts, it says whether unlearning left them where this model ranks facts it never saw
    (ratio near 1), above (remembered) or below (pushed too far)."""
    trained = torch.cat([s.train for s in kg.snapshots])
    keys = [fact_keys(s.train) for s in kg.snapshots]
    out: dict[str, Any] = {}
    for k in (2, 3, 4):
        gone = fact_keys(trained_removals(kg.retracted_facts(k), trained))
        origin = torch.full((len(gone),), -1)
        for j in range(k - 1, -1, -1):  # the earliest snapshot that trained the fact wins
            origin[torch.isin(gone, keys[j])] = j
        counts = torch.bincount(origin[origin >= 0], minlength=k)[:k].tolist()
        row: dict[str, Any] = {"origin": counts}
        for name, run_dir in runs.items():
            entry = json.loads((run_dir / "metrics.json").read_text())["snapshots"][k]
            per = {int(e["snapshot"]): float(e["mrr"]) for e in entry["per_test_set"]}
            unseen = sum(c * per[j] for j, c in enumerate(counts)) / max(sum(counts), 1)
            retracted = float(forget[str(k)][name]["all"])
            row[name] = {"retracted": retracted, "unseen": unseen, "ratio": retracted / max(unseen, 1e-12)}
        out[str(k)] = row
    return out


def utility(kg: GrowingKG, reference: GrowingKG, runs: dict[str, Path], reference_run: Path) -> dict[str, float]:
    """MRR after snapshot 4 on the retained test facts (all-entities protocol: one filter, one candidate set), the
    reference (no retractions) model ranked on the same facts through their labels."""
    test = torch.cat([retained(kg.snapshots, index=j, upto=4, split="test") for j in range(5)])
    known = kg.known_facts(4)
    out = {name: mrr(model_at(run_dir, 4), test, known, kg.snapshots[4].num_entities) for name, run_dir in runs.items()}
    to_ref_e = torch.tensor([reference.entities.id(label) for label in kg.entities.labels])
    to_ref_r = torch.tensor([reference.relations.id(label) for label in kg.relations.labels])

    def translate(t: torch.Tensor) -> torch.Tensor:
        return torch.stack([to_ref_e[t[:, 0]], to_ref_r[t[:, 1]], to_ref_e[t[:, 2]]], dim=1)

    out["lkge, no retractions"] = mrr(
        model_at(reference_run, 4), translate(test), translate(known), reference.snapshots[4].num_entities
    )
    out["test facts"] = len(test)
    return out


def guide_check(kg: GrowingKG, run_dir: Path, stream: Path, *, count: int) -> dict[str, Any]:
    """Bundle snapshot 4 of ``run_dir`` and ask ``count`` questions about entities with retracted facts."""
    from evergraph.kg.knowledge.guide import relation_phrase
    from evergraph.kg.knowledge.knowledge import Knowledge
    from evergraph.kg.store.bundle_writer import write_bundle

    bundle_dir = WORK / "bundle"
    if bundle_dir.exists():
        shutil.rmtree(bundle_dir)
    with heavy():
        write_bundle(run_dir=run_dir, snapshot=4, dest=bundle_dir, version="1", names=stream)
    knowledge = Knowledge.load(bundle_dir)
    bundle = knowledge.bundle
    retracted = kg.retracted_facts(4)
    gone = set(fact_keys(retracted).tolist())
    retired = set(bundle.retired.tolist())
    rows = retracted.tolist()
    random.Random(0).shuffle(rows)
    asked = cited_retracted = cited_total = linked_retired = 0
    about_retired = 0
    for h, r, _ in rows:
        label = bundle.entities.label(h)
        if label not in bundle.entity_names:
            continue
        relation = bundle.relations.label(r)
        phrase = relation_phrase(relation, bundle.relation_names.get(relation))
        result = knowledge.guide(f"What is the {phrase} of {bundle.entity_names[label]}?")
        asked += 1
        about_retired += h in retired
        for fact in result.facts:
            both = torch.tensor([[fact.head.id, fact.relation.id, fact.tail.id]])  # facts are in base orientation
            cited_total += 1
            cited_retracted += int(any(key in gone for key in fact_keys(both).tolist()))
            linked_retired += int(fact.head.id in retired or fact.tail.id in retired)
        if asked == count:
            break
    return {
        "questions": asked,
        "about retired entities": about_retired,
        "facts cited": cited_total,
        "retracted facts cited": cited_retracted,
        "facts citing a retired entity": linked_retired,
        "retired entities in the bundle": len(retired),
        "retracted facts in the bundle": int(len(retracted)),
    }


# ---------------------------------------------------------------------------------------------------- dumps


def write_exports(kg: GrowingKG, stream: Path, out: Path) -> None:
    """Version k = every fact known after snapshot k of the stream: N-Triples (with rdfs:label names and a literal
    attribute per named entity) for versions 0, 2, 4, TSV for 1 and 3."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    names = dict(line.split("\t", 1) for line in (stream / "entity_names.tsv").read_text().splitlines())
    for k in range(5):
        facts = [
            (kg.entities.label(h), kg.relations.label(r), kg.entities.label(t))
            for h, r, t in kg.known_facts(k).tolist()
        ]
        if k % 2 == 0:
            lines = [f"<{BASE}{h}> <{BASE}{r}> <{BASE}{t}> .\n" for h, r, t in facts]
            used = sorted({h for h, _, _ in facts} | {t for _, _, t in facts})
            for label in used:
                if label in names:
                    name = names[label].replace("\\", "\\\\").replace('"', '\\"')
                    lines.append(f'<{BASE}{label}> <{LABEL}> "{name}"@en .\n')
                    lines.append(f'<{BASE}{label}> <{BASE}/common/topic/version> "{k}" .\n')
            (out / f"2026-0{k + 1}-01.nt").write_text("".join(lines))
        else:
            rows = [f"{BASE}{h}\t{BASE}{r}\t{BASE}{t}\n" for h, r, t in facts]
            (out / f"2026-0{k + 1}-01.tsv").write_text("head\trelation\ttail\n" + "".join(rows))


def write_equivalent_lkge(dumps: Path, out: Path) -> None:
    """The lkge folder holding exactly what the dumps folder diffs into (same splits, same removals)."""
    if out.exists():
        shutil.rmtree(out)
    source = DumpsSource(dumps)
    for k, raw in enumerate(source.snapshots()):
        folder = out / str(k)
        folder.mkdir(parents=True)
        for name in SPLITS:
            (folder / f"{name}.txt").write_text("".join("\t".join(f) + "\n" for f in raw.split(name)))
        if raw.removed:
            (folder / "removed.txt").write_text("".join("\t".join(f) + "\n" for f in raw.removed))
    entity_names, relation_names = source.names()
    (out / "entity_names.tsv").write_text("".join(f"{k}\t{v}\n" for k, v in entity_names.items()))


def evergraph_run(data: Path, home: Path, *, dim: int, max_epochs: int) -> dict[str, Any]:
    if home.exists():
        shutil.rmtree(home)
    command = [
        str(ROOT / ".venv" / "bin" / "evergraph"), "run", "--data", str(data), "--home", str(home),
        "--dim", str(dim), "--max-epochs", str(max_epochs), "--device", "cpu", "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    with heavy():
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"evergraph run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    metrics = next((home / "runs").glob("*/metrics.json"))
    entries = json.loads(metrics.read_text())["snapshots"]
    return {
        "seconds": round(seconds, 1),
        "stream_mrr": [round(e["stream"]["mrr"], 4) for e in entries],
        "versions": len(entries),
    }


def engine_run(data: Path, out: Path, *, dim: int, max_epochs: int) -> dict[str, Any]:
    """The engine alone (what the pipeline's train step runs) on ``data``, lkge with the given size."""
    if out.exists():
        shutil.rmtree(out)
    started = time.perf_counter()
    metrics = run(data, out, config("lkge", dim=dim, max_epochs=max_epochs))
    entries = metrics["snapshots"]
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "stream_mrr": [round(e["stream"]["mrr"], 4) for e in entries],
        "versions": len(entries),
    }


def parse_speed(dumps: Path) -> dict[str, float]:
    """N-Triples read by :func:`read_rdf` per second of wall time and per second of this process's CPU time (the
    machine is shared, so wall time depends on the other jobs); best of 3 passes over the N-Triples exports."""
    files = sorted(dumps.glob("*.nt"))
    best_wall = best_cpu = 0.0
    triples = 0
    for _ in range(3):
        wall, cpu = time.perf_counter(), time.process_time()
        triples = 0
        for file in files:
            content = read_rdf(file, turtle=False)
            triples += len(content.facts) + content.attributes + len(content.names)
        best_wall = max(best_wall, triples / (time.perf_counter() - wall))
        best_cpu = max(best_cpu, triples / (time.process_time() - cpu))
    rdflib_rate = cached("rdflib-speed", lambda: rdflib_speed(files[0]))
    return {
        "read_rdf triples/s (wall)": round(best_wall),
        "read_rdf triples/s (CPU)": round(best_cpu),
        "triples per pass": triples,
        **rdflib_rate,
    }


def rdflib_speed(file: Path) -> dict[str, float]:
    import rdflib

    lines = file.read_text().splitlines(keepends=True)[:50_000]
    sample = WORK / "sample.nt"
    sample.write_text("".join(lines))
    started = time.perf_counter()
    graph = rdflib.Graph()
    graph.parse(sample, format="nt")
    rdflib_rate = len(graph) / (time.perf_counter() - started)
    import pyoxigraph as ox

    started = time.perf_counter()
    with sample.open("rb") as handle:
        n = sum(1 for _ in ox.parse(handle, format=ox.RdfFormat.N_TRIPLES))
    return {
        "rdflib triples/s": round(rdflib_rate),
        "pyoxigraph objects triples/s": round(n / (time.perf_counter() - started)),
    }


# ------------------------------------------------------------------------------------------------------- cost

RETRAIN_EPOCHS = {2: 40, 3: 30, 4: 25}
"""Epochs ``retrain`` trained ENTITY snapshots 2-4 for in the lifelong bench (early stopping; the ``retrain`` row of
the ENTITY table above): what one timed epoch is multiplied by when the full run cannot be made."""


def retrain_epoch_seconds(model: Any, triples: torch.Tensor, train: Any, generator: torch.Generator) -> float:
    """Seconds of one plain training epoch of ``model`` over ``triples`` (``retrain``'s step: link-prediction loss,
    Adam), the unit both cost measures compare the unlearning step with."""
    from evergraph.kg.engine.training import link_prediction_loss, make_optimizer

    optimizer = make_optimizer(model, train.lr)
    order = torch.randperm(len(triples), generator=generator)
    size = train.batch_size
    started = time.perf_counter()
    for b in range(0, len(triples), size):
        batch = triples[order[b : b + size]]
        negatives = torch.randint(model.num_entities, (len(batch), train.num_negatives))
        loss = link_prediction_loss(
            model, batch, negatives, margin=train.margin, temperature=train.adversarial_temperature
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def cost_only(stream: Path, *, dims: tuple[int, ...]) -> None:
    """The unlearning step alone on the ENTITY stream (the strategy's whole ``_unlearn``) against one epoch of
    ``retrain`` on the same snapshot (best of 2 each, timed alternately), per snapshot
    2-4 and per model width. Light: no full training. With every one of its steps (no early stop) the step's time
    does not depend on the weights (fixed steps over the retracted facts and a capped sample of neighbours), so a
    freshly initialised model of the width of snapshot ``k - 1`` is used: an upper bound of the step's cost."""
    from evergraph.kg.engine.model import doubled_triples
    from evergraph.kg.engine.strategies import SnapshotContext, get_strategy

    kg = GrowingKG.load(stream)
    load = os.getloadavg()[0]
    table: dict[str, Any] = {}
    for dim in dims:
        for k in (2, 3, 4):
            cfg = config("lkge", dim=dim, max_epochs=1)
            cfg.lkge.unlearning.stop_share = 0.0  # every step: a fresh model would stop at once (not representative)
            generator = torch.Generator().manual_seed(0)
            before = SnapshotContext(kg=kg, index=k - 1, device=torch.device("cpu"), generator=generator)
            unlearn_s = epoch_s = float("inf")
            details: dict[str, Any] = {}
            retrain = config("retrain", dim=dim, max_epochs=1)
            triples = doubled_triples(kg.train_facts(k))
            for _ in range(2):  # alternately, so that both see the same load; the best of each
                strategy = get_strategy(cfg)
                model = strategy.new_model(before)
                ctx = SnapshotContext(kg=kg, index=k, device=torch.device("cpu"), generator=generator)
                started = time.perf_counter()
                strategy._unlearn(model, ctx)
                unlearn_s = min(unlearn_s, time.perf_counter() - started)
                details = ctx.info["unlearning"]
                ctx = SnapshotContext(kg=kg, index=k, device=torch.device("cpu"), generator=generator)
                model = get_strategy(retrain).new_model(ctx)
                epoch_s = min(epoch_s, retrain_epoch_seconds(model, triples, retrain.train, generator))
            estimate = epoch_s * RETRAIN_EPOCHS[k]
            table[f"{dim}/{k}"] = {
                "dim": dim,
                "snapshot": k,
                "unlearning s": round(unlearn_s, 2),
                "retrain epoch s": round(epoch_s, 2),
                "unlearning in retrain epochs": round(unlearn_s / epoch_s, 3),
                "retrain s (estimate)": round(estimate, 1),
                "share": unlearn_s / estimate,
                "forgotten": details.get("forgotten"),
                "retained_sampled": details.get("retained_sampled"),
                "train facts": len(kg.train_facts(k)),
            }
            logger.info("cost %s", table[f"{dim}/{k}"])
    load = max(load, os.getloadavg()[0])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    defaults = UnlearningConfig()
    lines = [
        "## Unlearning cost on ENTITY (`bench/retraction.py --cost-only`)",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; commit {commit.strip()}; machine: 2-core CPU shared"
        f" with other jobs (1-minute load average up to {load:.1f}), 1 thread, torch {torch.__version__}",
        "- **estimate, not the acceptance run**: the full ENTITY protocol could not get the shared heavy-job lock this"
        " session. The unlearning step (the LKGE strategy's whole `_unlearn`: picking the retracted facts it trained"
        " on, targets, neighbours, and the optimisation) is timed alone on the ENTITY retraction stream;"
        " `retrain`'s epoch on the same snapshot (all retained train facts + inverses, batch"
        f" {TrainConfig().batch_size}, {TrainConfig().num_negatives} negatives) is timed whole; best of 2 each,"
        " timed alternately; retrain's time is that epoch times the epochs `retrain` needed on ENTITY in the"
        f" lifelong bench ({RETRAIN_EPOCHS}, dim 200, early stopping)",
        f"- unlearning settings: all {defaults.steps} steps (the default early stop, `stop_share`"
        f" {defaults.stop_share}, is switched off here: a freshly initialised model is no guide to when a trained one"
        " stops; trained models on the example graph stop after 14-18 steps), at most"
        f" {defaults.retain_samples} retained neighbour facts (+ {defaults.negatives} corrupted copies each), TransE",
        "",
        "| dim | snapshot | train facts | retracted facts unlearned | neighbours kept | unlearning s, 100 steps"
        " | retrain epoch s | unlearning in retrain epochs | retrain s (estimate) | share (bar 5%) |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {r['dim']} | {r['snapshot']} | {r['train facts']} | {r['forgotten']} | {r['retained_sampled']} "
            f"| {r['unlearning s']} | {r['retrain epoch s']} | {r['unlearning in retrain epochs']} "
            f"| {r['retrain s (estimate)']} | {r['share']:.1%} |"
            for r in table.values()
        ],
    ]
    write_section("retraction-cost", "\n".join(lines))


def cost_trained(stream: Path, run_dir: Path) -> None:
    """The unlearning step as the strategy runs it (early stop on) on a *trained* ENTITY model: snapshot 1 of the
    lifelong bench's lkge run (``run_dir``, TransE dim 200: the retraction stream's snapshots 0-1 are the ENTITY
    files, so its ids are this stream's), before snapshot 2 retracts; against ``retrain``'s epoch on snapshot 2 at
    the same width (best of 2 each) times the epochs retrain needed there. Also the filtered MRR on the retracted
    facts before and after the step, beside the MRR on validation facts the model never trained on (what a model
    that never saw a fact gives it). Light: no training."""
    from evergraph.kg.engine.model import doubled_triples
    from evergraph.kg.engine.strategies import SnapshotContext, get_strategy
    from evergraph.kg.engine.vocab import Vocabulary

    kg = GrowingKG.load(stream, upto=2)
    theirs = Vocabulary.load(run_dir / "vocab" / "entities.tsv")
    checkpoint = RunPaths(run_dir).snapshot_checkpoint(1)
    trained, state = load_model_checkpoint(checkpoint)
    n = trained.num_entities
    if [theirs.label(i) for i in range(n)] != [kg.entities.label(i) for i in range(n)]:
        raise SystemExit(f"{run_dir} does not share this stream's entity ids")
    dim, k = int(state["dim"]), 2
    load = os.getloadavg()[0]
    unseen = torch.cat([retained(kg.snapshots, index=j, upto=k, split="valid") for j in range(k)])
    gone = trained_removals(kg.snapshots[k].removed, kg.train_facts(k - 1))
    retired = kg.retired_entities(k)
    gone = gone[~(torch.isin(gone[:, 0], retired) | torch.isin(gone[:, 2], retired))]
    known = kg.known_facts(k)
    known = known[(known[:, 0] < n) & (known[:, 2] < n)]

    def ranked(model: Any, triples: torch.Tensor) -> float:
        ranks = filtered_ranks(score_fn=model.score_fn(), triples=triples, known=known, num_candidates=n)
        return RankingMetrics.from_ranks(ranks.realistic).mrr

    sample = unseen[torch.randperm(len(unseen), generator=torch.Generator().manual_seed(0))[:5000]]
    figures: dict[str, Any] = {
        "MRR on retracted facts before": ranked(trained, gone),
        "unseen MRR": ranked(trained, sample),
    }
    cfg = config("lkge", dim=dim, max_epochs=1)
    retrain = config("retrain", dim=dim, max_epochs=1)
    triples = doubled_triples(kg.train_facts(k))
    unlearn_s = epoch_s = float("inf")
    for _ in range(2):
        model, _ = load_model_checkpoint(checkpoint)
        generator = torch.Generator().manual_seed(0)
        ctx = SnapshotContext(kg=kg, index=k, device=torch.device("cpu"), generator=generator)
        started = time.perf_counter()
        get_strategy(cfg)._unlearn(model, ctx)
        unlearn_s = min(unlearn_s, time.perf_counter() - started)
        figures["unlearning"] = ctx.info["unlearning"]
        figures["MRR on retracted facts after"] = ranked(model, gone)
        fresh = get_strategy(retrain).new_model(ctx)
        epoch_s = min(epoch_s, retrain_epoch_seconds(fresh, triples, retrain.train, generator))
    estimate = epoch_s * RETRAIN_EPOCHS[k]
    load = max(load, os.getloadavg()[0])
    logger.info("trained-model cost: %s", figures)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    u = figures["unlearning"]
    lines = [
        "",
        f"### With a trained model and the early stop (snapshot 2, TransE dim {dim})",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; commit {commit.strip()}; load average up to"
        f" {load:.1f}; the model: snapshot 1 of the lifelong bench's lkge run on ENTITY (`{run_dir.name}`, whose"
        " snapshots 0-1 are this stream's), so the step runs exactly as in the strategy, early stop included",
        "",
        "| | |",
        "|---|---|",
        f"| unlearning step s (best of 2) | {unlearn_s:.2f} |",
        f"| steps taken (of at most {UnlearningConfig().steps}) | {u['steps']} |",
        f"| retracted facts unlearned / neighbours kept / entities retired | {u['forgotten']} / {u['retained_sampled']}"
        f" / {u['retired']} |",
        f"| retrain epoch s on snapshot 2 (dim {dim}, best of 2) | {epoch_s:.2f} |",
        f"| retrain s (estimate: x {RETRAIN_EPOCHS[k]} epochs) | {estimate:.1f} |",
        f"| **share (bar 5%)** | **{unlearn_s / estimate:.2%}** |",
        f"| filtered MRR on the retracted facts before the step | {figures['MRR on retracted facts before']:.4f} |",
        f"| ... after the step | {figures['MRR on retracted facts after']:.4f} |",
        f"| filtered MRR on 5,000 validation facts the model never trained on | {figures['unseen MRR']:.4f} |",
        "",
        "The MRR after the step is taken before snapshot 2's training (which the acceptance run would measure); a model"
        " that never saw the retracted facts would rank them about like the unseen validation facts.",
    ]
    section = "retraction-cost"
    text = (ROOT / "bench" / "RESULTS.md").read_text()
    start, end = f"<!-- {section}:start -->", f"<!-- {section}:end -->"
    body = text[text.index(start) + len(start) : text.index(end)].strip("\n")
    body = body.split("\n### With a trained model")[0].rstrip("\n")
    write_section(section, body + "\n" + "\n".join(lines))


# ------------------------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--dump-dim", type=int, default=50)
    parser.add_argument("--dump-epochs", type=int, default=10)
    parser.add_argument("--questions", type=int, default=500, help="guide questions (0: no bundle, no guide check)")
    parser.add_argument("--skip-dumps", action="store_true")
    parser.add_argument(
        "--data",
        choices=("ENTITY", "example"),
        default="ENTITY",
        help="ENTITY (heavy: takes the shared lock per phase) or the generated example graph at full scale (light)",
    )
    parser.add_argument("--forget-entities", type=int, default=50, help="entities whose facts are all retracted")
    parser.add_argument(
        "--patience", type=int, default=2, help="validations without gain before a snapshot stops (engine default 3)"
    )
    parser.add_argument(
        "--work",
        default="retraction",
        help="folder under bench/runs for this setting's runs and cached results (one per setting)",
    )
    parser.add_argument(
        "--parse-only", action="store_true", help="only write the ENTITY exports and time N-Triples parsing (light)"
    )
    parser.add_argument(
        "--cost-only",
        action="store_true",
        help="only time the unlearning step against one retrain epoch per snapshot on ENTITY (light)",
    )
    parser.add_argument(
        "--cost-trained",
        type=Path,
        default=None,
        help="with --cost-only: also time the step on this lkge run's trained ENTITY snapshot 1 (light)",
    )
    parser.add_argument(
        "--lock-held",
        action="store_true",
        help="the caller already holds the shared lock for the whole run (`flock /tmp/evergraph-heavy.lock python "
        "bench/retraction.py --lock-held`): no lock is taken per phase",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(1)  # two threads on two shared, oversubscribed cores spin far more than they compute
    global WORK, USE_LOCK, PATIENCE
    USE_LOCK = not args.lock_held
    WORK, PATIENCE = WORK.with_name(args.work), args.patience
    if args.data == "example":
        from evergraph.kg.engine.example import write_example_dataset

        WORK, USE_LOCK = WORK.with_name("retraction-example" if args.work == "retraction" else args.work), False
        WORK.mkdir(parents=True, exist_ok=True)
        source = WORK / "example"
        if not (source / "4").exists():
            write_example_dataset(source, seed=0, scale=1.0)
    else:
        source = ENTITY
    WORK.mkdir(parents=True, exist_ok=True)
    stream, reference = WORK / "stream", WORK / "reference"
    summary = cached(
        "stream",
        lambda: build_retraction_stream(source=source, out=stream, share=0.05, entities=args.forget_entities, seed=0),
    )
    if not (reference / "4").exists():
        build_retraction_stream(source=source, out=reference, share=0.0, entities=0, seed=0)
    names = (
        (TEXT / "entity2text.txt", TEXT / "relation2text.txt")
        if args.data == "ENTITY"
        else (
            source / "entity_names.tsv",
            source / "relation_names.tsv",
        )
    )
    for data in (stream, reference):
        shutil.copyfile(names[0], data / "entity_names.tsv")
        shutil.copyfile(names[1], data / "relation_names.tsv")

    if args.parse_only:
        parse_only(stream)
        return
    if args.cost_only:
        if args.cost_trained is None:
            cost_only(stream, dims=(32, args.dim))
        else:
            cost_trained(stream, args.cost_trained)
        return
    dim, epochs = args.dim, args.max_epochs
    shared = WORK / "lkge-0-1"
    if not RunPaths(shared).snapshot_checkpoint(1).exists():
        run(stream, shared, config("lkge", dim=dim, max_epochs=epochs), upto=1)
    runs = {
        "lkge + unlearning": (WORK / "lkge-unlearn", stream, config("lkge", dim=dim, max_epochs=epochs)),
        "lkge without unlearning": (
            WORK / "lkge-without",
            stream,
            config("lkge", dim=dim, max_epochs=epochs, unlearn=False),
        ),
        "lkge, no retractions": (WORK / "lkge-reference", reference, config("lkge", dim=dim, max_epochs=epochs)),
    }
    for out, data, cfg in runs.values():
        continue_from(shared, out, cfg)
        run(data, out, cfg)
    retrain_dir = WORK / "retrain"
    run(stream, retrain_dir, config("retrain", dim=dim, max_epochs=epochs))

    kg = GrowingKG.load(stream)
    forgotten = {kg.entities.id(label) for label in summary["forgotten_entities"]}
    compared = {
        "lkge + unlearning": runs["lkge + unlearning"][0],
        "lkge without unlearning": runs["lkge without unlearning"][0],
        "retrain (exact)": retrain_dir,
    }
    forget = cached("forgetting", lambda: forgetting(kg, compared, forgotten))
    age = cached("same-age", lambda: same_age(kg, compared, forget))
    use = cached("utility", lambda: utility(kg, GrowingKG.load(reference), compared, runs["lkge, no retractions"][0]))
    metrics = {name: json.loads((d / "metrics.json").read_text()) for name, d in compared.items()}
    cost = {
        str(k): {
            "unlearning s": metrics["lkge + unlearning"]["snapshots"][k].get("unlearning", {}).get("seconds"),
            "retrain train s": metrics["retrain (exact)"]["snapshots"][k]["train_seconds"],
            "lkge train s": metrics["lkge + unlearning"]["snapshots"][k]["train_seconds"],
            "unlearning": metrics["lkge + unlearning"]["snapshots"][k].get("unlearning"),
        }
        for k in (2, 3, 4)
    }
    guide = (
        cached("guide", lambda: guide_check(kg, runs["lkge + unlearning"][0], stream, count=args.questions))
        if args.questions
        else {}
    )

    dumps_result: dict[str, Any] = {}
    if not args.skip_dumps:
        dumps, equivalent = WORK / "dumps", WORK / "dumps-as-lkge"
        if not (dumps / "2026-05-01.nt").exists():
            write_exports(kg, stream, dumps)
            write_equivalent_lkge(dumps, equivalent)
        speed = parse_speed(dumps)
        engine = cached(
            "dumps-engine",
            lambda: {
                name: engine_run(
                    data, WORK / f"engine-{name.split()[0]}", dim=args.dump_dim, max_epochs=args.dump_epochs
                )
                for name, data in (("dumps folder", dumps), ("equivalent lkge folder", equivalent))
            },
        )
        try:
            runs_d = cached(
                "dumps-runs",
                lambda: {
                    "dumps folder": evergraph_run(
                        dumps, WORK / "home-dumps", dim=args.dump_dim, max_epochs=args.dump_epochs
                    ),
                    "equivalent lkge folder": evergraph_run(
                        equivalent, WORK / "home-lkge", dim=args.dump_dim, max_epochs=args.dump_epochs
                    ),
                },
            )
        except RuntimeError as error:  # reported as such: the engine-level figures stand on their own
            logger.error("evergraph run failed: %s", str(error)[-600:])
            runs_d = {
                "evergraph run failed": {"versions": 0, "stream_mrr": str(error).splitlines()[-1][:200], "seconds": 0}
            }
        runs_d = {**{f"{k} (engine, LifelongRun)": v for k, v in engine.items()}, **runs_d}
        dumps_result = {
            "speed": speed,
            "runs": runs_d,
            "sizes": {p.name: p.stat().st_size for p in sorted(dumps.iterdir())},
        }
    report(args, summary, forget, use, cost, guide, dumps_result, age)


def parse_only(stream: Path) -> None:
    """The 5 ENTITY exports of the retraction stream (no training) and the N-Triples parse speed."""
    dumps = WORK / "dumps"
    if not (dumps / "2026-05-01.nt").exists():
        write_exports(GrowingKG.load(stream), stream, dumps)
    load = os.getloadavg()[0]
    speed = parse_speed(dumps)
    load = max(load, os.getloadavg()[0])
    sizes = {p.name: p.stat().st_size for p in sorted(dumps.iterdir())}
    kg = GrowingKG.load(dumps)
    diff = [
        {k: s.report.source.get(k) for k in ("facts", "added", "removed", "names", "attributes")} for s in kg.snapshots
    ]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    lines = [
        "## Full exports of ENTITY: parsing and diffing (`bench/retraction.py --parse-only`)",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; commit {commit.strip()}; machine: 2-core CPU shared"
        f" with other jobs (1-minute load average up to {load:.1f} while measured), 1 thread",
        "- exports: every fact known after each snapshot of the ENTITY retraction stream; N-Triples for versions 1, 3,"
        f" 5 with an rdfs:label and one literal attribute per named entity, TSV for 2 and 4; bytes {sizes}",
        "- parsing (3 N-Triples exports, best of 3 passes; wall time depends on the other jobs, CPU time does not):"
        f" {speed}",
        "- rdflib and pyoxigraph with one Python object per term were timed on the first 50,000 lines of the first"
        " export; `read_rdf` reads lines of three IRIs in bulk (Arrow's C++ CSV reader over the file's bytes, each"
        " distinct term checked once, facts deduplicated on dictionary codes), the few literal lines (names,"
        " attributes) with one regular expression, and hands any file with anything else to the regular expression"
        " over the whole file, then to pyoxigraph (exact errors with line and byte offset)",
        "- the diff of each export against the previous one (what `GrowingKG.load` of the folder ingests):",
        "",
        "| version | facts | added | removed | names | attributes |",
        "|---|---|---|---|---|---|",
        *[
            f"| {i} | {d['facts']} | {d['added']} | {d['removed']} | {d.get('names') or ''} "
            f"| {d.get('attributes') or ''} |"
            for i, d in enumerate(diff)
        ],
    ]
    write_section("retraction-parse", "\n".join(lines))


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def setting_name(args: Any) -> str:
    """``engine defaults`` when the run used the engine's own training settings, ``reduced setting`` otherwise."""
    defaults = RunConfig()
    full = (args.dim, args.max_epochs, args.patience) == (
        defaults.model.dim,
        defaults.train.max_epochs,
        defaults.train.patience,
    )
    return "engine defaults" if full else "reduced setting"


def report(args: Any, summary: Any, forget: Any, use: Any, cost: Any, guide: Any, dumps: Any, age: Any) -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    lines = [
        f"## Retraction and unlearning (`bench/retraction.py --data {args.data} --work {args.work}`)",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; commit {commit.strip()}",
        f"- machine: {platform.platform()}, 2-core CPU shared with other jobs (1-minute load average"
        f" {os.getloadavg()[0]:.1f} when written), torch {torch.__version__}",
        f"- **{setting_name(args)}**: TransE dim {args.dim}, at most {args.max_epochs} epochs per snapshot (validation"
        f" every 5, patience {args.patience}), seed 0, protocol all-entities; lkge on snapshots 0-1 is trained once and"
        " continued three ways (the data of snapshots 0-1 is identical in all three streams)",
        f"- stream: {args.data}, snapshots 2-4 retract 5% of the earlier train facts still known at random, snapshot 2"
        f" also every fact of {args.forget_entities} entities; retracted per snapshot: {summary['retracted']}",
        "",
        "### Forgetting: filtered MRR on the retracted facts the model trained on",
        "",
        f"| after snapshot | model | all | random 5% | facts of the {args.forget_entities} forgotten entities |",
        "|---|---|---|---|---|",
    ]
    for k, table in forget.items():
        for name, parts in table.items():
            if name == "facts":
                continue
            lines.append(
                f"| {k} | {name} | " + " | ".join(_fmt(parts[p]) for p in ("all", "random 5%", "50 entities")) + " |"
            )
        lines.append(
            f"| {k} | (facts) | "
            + " | ".join(str(table["facts"][p]) for p in ("all", "random 5%", "50 entities"))
            + " |"
        )
    lines += [
        "",
        "### The same models on unseen facts of the same age",
        "",
        "Each model's MRR on the held-out test facts of the snapshots the retracted facts came from (per-test-set MRR"
        " weighted by the snapshot that first trained each retracted fact): a ratio near 1 means the retracted facts"
        " rank like facts this model never saw; above 1, remembered; well below, pushed too far.",
        "",
        "| after snapshot | model | retracted facts | unseen test facts of the same snapshots | ratio |",
        "|---|---|---|---|---|",
    ]
    for k, row in age.items():
        for name, value in row.items():
            if name != "origin":
                lines.append(
                    f"| {k} | {name} | {_fmt(value['retracted'])} | {_fmt(value['unseen'])} | {value['ratio']:.2f} |"
                )
    lines += [
        "",
        "### Utility: MRR after snapshot 4 on the retained test facts",
        "",
        "| model | MRR |",
        "|---|---|",
        *[f"| {name} | {_fmt(value)} |" for name, value in use.items()],
        "",
        "### Cost: the unlearning phase vs retrain's training of the same snapshot",
        "",
        "| snapshot | unlearning s | retrain train s | share | lkge train s | unlearning details |",
        "|---|---|---|---|---|---|",
    ]
    for k, c in cost.items():
        share = (c["unlearning s"] or 0) / c["retrain train s"]
        lines.append(
            f"| {k} | {c['unlearning s']} | {c['retrain train s']} | {share:.1%} | {c['lkge train s']} "
            f"| {c['unlearning']} |"
        )
    alone = WORK / "unlearning-alone.json"
    if alone.exists():
        lines += [
            "",
            "The unlearning phase timed alone afterwards (the strategy's whole `_unlearn`, best of 3, seconds per "
            f"snapshot): {json.loads(alone.read_text())}; the table's figures were taken inside the runs, with other "
            "jobs (ours included) on the same two cores.",
        ]
    if guide:
        lines += ["", "### Guide over questions about entities with retracted facts", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in guide.items()]
    if dumps:
        lines += [
            "",
            "### Dumps: a 5-version export through `evergraph run` vs the equivalent lkge folder",
            "",
            f"- exports (N-Triples 0/2/4 with rdfs:label names and one literal attribute per named entity, TSV 1/3):"
            f" {dumps['sizes']}",
            f"- `evergraph run` reduced to dim {args.dump_dim}, {args.dump_epochs} epochs per snapshot",
            "",
            "| data | versions | stream MRR after each version | seconds |",
            "|---|---|---|---|",
            *[f"| {n} | {r['versions']} | {r['stream_mrr']} | {r['seconds']} |" for n, r in dumps["runs"].items()],
            "",
            f"- N-Triples parsing on this machine (3 exports, best of 3): {dumps['speed']}",
        ]
    section = "retraction-example" if args.data == "example" and args.work == "retraction" else args.work
    write_section(section, "\n".join(lines))


if __name__ == "__main__":
    main()
