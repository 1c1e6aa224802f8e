"""Knowledge-guiding benchmark on ENTITY snapshot 4 with the FB15k-237 names; writes the ``guide`` section of
``bench/RESULTS.md``.

Needs the ENTITY lkge run of ``python bench/lifelong.py --datasets ENTITY --strategies lkge`` (its snapshot-4
checkpoint) and ``../shared/data/fb15k237_text``. It writes that snapshot as a serving bundle (with the readable
names) into ``bench/runs/guide-home`` and then measures:

- **questions** from test triples ``(h, r, t)`` of every snapshot (never known to the bundle, which holds only
  training facts): "What is the <relation> of <head name>?", the relation phrase taken from ``relation2text.txt``
  (the words of the path's last segment, :func:`evergraph.kg.knowledge.guide.relation_phrase`); the answer is ``t``;
- **linking accuracy**: the head is the first linked entity (and among the anchors);
- **Hits@context**: the answer entity appears in a cited fact (known, inferred, either), i.e. Hits@k with k the
  number of facts in the context (at most ``max_known + max_inferred``), for 1 and 2 hops;
- **abstention** on questions about the FB15k-237 entities that are *not* in the graph (their names are in
  entity2text.txt but in no snapshot), and wrongly on the in-graph questions;
- **latency** of ``guide`` (p50/p95): in-process, and over HTTP (``evergraph serve`` in a subprocess) with 1 and
  16 concurrent clients.

    python bench/guide.py [--questions 500] [--no-write]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import logging
import os
import platform
import random
import shutil
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._results import write_section  # noqa: E402
from evergraph.flows.services import free_port, start_knowledge_server, stop_process  # noqa: E402
from evergraph.kg.engine.ingest import GrowingKG, read_names  # noqa: E402
from evergraph.kg.knowledge.guide import GuideConfig, relation_phrase  # noqa: E402
from evergraph.kg.knowledge.knowledge import Knowledge  # noqa: E402
from evergraph.kg.store.bundle_writer import switch_pointer, write_bundle  # noqa: E402
from evergraph.kg.store.home import EvergraphHome  # noqa: E402

logger = logging.getLogger("bench.guide")

SHARED = ROOT.parent / "shared" / "data"
RUN = ROOT / "bench" / "runs" / "ENTITY-lkge-lkge-paper"
HOME = ROOT / "bench" / "runs" / "guide-home"


def prepare_home(run: Path, text: Path, home: EvergraphHome) -> Path:
    """Bundle snapshot 4 of ``run`` with the FB15k-237 names as version 1 of ``home``; returns the bundle."""
    names = home.root / "names"
    names.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(text / "entity2text.txt", names / "entity_names.tsv")
    shutil.copyfile(text / "relation2text.txt", names / "relation_names.tsv")
    bundle = home.bundle_dir("1")
    if bundle.exists():
        shutil.rmtree(bundle)  # always rebuild: the bundle format or calibration may have changed
    started = time.perf_counter()
    write_bundle(run_dir=run, snapshot=4, dest=bundle, version="1", names=names)
    logger.info("bundle written in %.1fs", time.perf_counter() - started)
    switch_pointer(pointer=home.champion_pointer, bundle=bundle, version="1")
    return bundle


def make_questions(knowledge: Knowledge, data: Path, *, count: int, seed: int) -> list[tuple[str, int, int]]:
    """``(question, head id, answer id)`` from test triples of every snapshot."""
    bundle = knowledge.bundle
    kg = GrowingKG.load(data, upto=bundle.snapshot, entities=bundle.entities, relations=bundle.relations)
    test = torch.cat([s.test for s in kg.snapshots]).tolist()
    random.Random(seed).shuffle(test)
    questions = []
    for h, r, t in test:
        label = bundle.entities.label(h)
        if label not in bundle.entity_names:
            continue
        relation = bundle.relations.label(r)
        phrase = relation_phrase(relation, bundle.relation_names.get(relation))
        questions.append((f"What is the {phrase} of {bundle.entity_names[label]}?", h, t))
        if len(questions) == count:
            break
    return questions


def with_typos(questions: list[tuple[str, int, int]], knowledge: Knowledge, *, seed: int) -> list[tuple[str, int, int]]:
    """The same questions with one letter dropped from the longest word (of at least 5 letters) of the head's
    name; names without such a word are left out."""
    rng = random.Random(seed)
    result = []
    for question, head, answer in questions:
        name = knowledge.bundle.entity_names[knowledge.bundle.entities.label(head)]
        words = [w for w in name.split() if w.isalpha() and len(w) >= 5]
        if not words:
            continue
        word = max(words, key=len)
        cut = rng.randrange(1, len(word) - 1)
        typo = name.replace(word, word[:cut] + word[cut + 1 :], 1)
        result.append((question.replace(name, typo), head, answer))
    return result


def unknown_questions(knowledge: Knowledge, text: Path, *, count: int, seed: int) -> list[str]:
    """Questions about FB15k-237 entities with a name but in no snapshot of the graph."""
    names = read_names(text / "entity2text.txt")
    outside = sorted(name for label, name in names.items() if label not in knowledge.bundle.entities)
    rng = random.Random(seed)
    relation_names = knowledge.bundle.relation_names
    phrases = [relation_phrase(label, relation_names.get(label)) for label in knowledge.bundle.relations]
    rng.shuffle(outside)
    return [f"What is the {rng.choice(phrases)} of {name}?" for name in outside[:count]]


def quality(knowledge: Knowledge, questions: list[tuple[str, int, int]]) -> dict[str, float]:
    linked_first = linked_any = abstained = 0
    hits = {"known": 0, "inferred": 0, "any": 0}
    facts = inferred = 0
    for question, head, answer in questions:
        result = knowledge.guide(question)
        linked_first += bool(result.entities) and result.entities[0].id == head
        linked_any += any(e.id == head for e in result.entities)
        abstained += result.abstained
        facts += len(result.facts)
        inferred += sum(f.kind == "inferred" for f in result.facts)
        found = {"known": False, "inferred": False}
        for fact in result.facts:
            ends = {fact.head.id, fact.tail.id} - {head}
            if answer in ends:
                found[fact.kind] = True
        hits["known"] += found["known"]
        hits["inferred"] += found["inferred"]
        hits["any"] += found["known"] or found["inferred"]
    n = len(questions)
    return {
        "linking@1": linked_first / n,
        "linking@anchors": linked_any / n,
        "hits_known": hits["known"] / n,
        "hits_inferred": hits["inferred"] / n,
        "hits_any": hits["any"] / n,
        "abstained": abstained / n,
        "facts": facts / n,
        "inferred": inferred / n,
    }


def percentiles(seconds: list[float]) -> tuple[float, float]:
    values = np.array(seconds) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def http_latency(
    home: EvergraphHome, questions: list[str], *, clients: int, requests: int
) -> tuple[float, float, float]:
    """p50, p95 (ms) and throughput (requests/s) of POST /guide against `evergraph serve` in a subprocess."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = start_knowledge_server(home=home, port=free_port(), env=env, logs=home.root / "logs")
    url = str(server.url)
    try:

        def worker(index: int) -> list[float]:
            latencies = []
            with httpx.Client(base_url=url, timeout=30) as http:
                for i in range(index, requests, clients):
                    started = time.perf_counter()
                    response = http.post("/guide", json={"question": questions[i % len(questions)]})
                    response.raise_for_status()
                    latencies.append(time.perf_counter() - started)
            return latencies

        with httpx.Client(base_url=url, timeout=30) as http:  # warm-up
            for question in questions[:10]:
                http.post("/guide", json={"question": question}).raise_for_status()
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            latencies = [x for part in pool.map(worker, range(clients)) for x in part]
        elapsed = time.perf_counter() - started
        p50, p95 = percentiles(latencies)
        return p50, p95, len(latencies) / elapsed
    finally:
        stop_process(server)


def quality_table(one: dict[str, float], two: dict[str, float]) -> str:
    rows = [
        ("linking: head is the first entity", "linking@1", ".3f"),
        ("linking: head among the anchors", "linking@anchors", ".3f"),
        ("answer in a cited fact (Hits@context)", "hits_any", ".3f"),
        ("... in a known fact", "hits_known", ".3f"),
        ("... in an inferred fact", "hits_inferred", ".3f"),
        ("facts per context", "facts", ".1f"),
        ("inferred facts per context", "inferred", ".1f"),
        ("abstained on in-graph questions", "abstained", ".3f"),
    ]
    lines = ["| measure | 1 hop | 2 hops |", "|---|---|---|"]
    lines += [f"| {label} | {one[key]:{fmt}} | {two[key]:{fmt}} |" for label, key, fmt in rows]
    return "\n".join(lines)


def latency_table(local: tuple[float, float], http1: tuple[float, ...], http16: tuple[float, ...]) -> str:
    lines = ["| `guide` latency | p50 ms | p95 ms | goal (p50) | throughput |", "|---|---|---|---|---|"]
    for label, values, goal in (
        ("in-process", local, 20),
        ("HTTP, 1 client", http1, 30),
        ("HTTP, 16 concurrent clients", http16, 30),
    ):
        verdict = "met" if values[0] < goal else "missed"
        rate = f"{values[2]:.0f} req/s" if len(values) > 2 else ""
        lines.append(f"| {label} | {values[0]:.1f} | {values[1]:.1f} | < {goal} ms: {verdict} | {rate} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=RUN)
    parser.add_argument("--data", type=Path, default=SHARED / "lkge" / "ENTITY")
    parser.add_argument("--text", type=Path, default=SHARED / "fb15k237_text")
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("evergraph").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if not (args.run / "checkpoints" / "snapshot-4.pt").is_file() or not args.text.is_dir():
        logger.error("needs %s (run bench/lifelong.py --datasets ENTITY --strategies lkge) and %s", args.run, args.text)
        return 2
    torch.set_num_threads(min(2, torch.get_num_threads()))
    home = EvergraphHome(HOME)
    bundle = prepare_home(args.run, args.text, home)
    started = time.perf_counter()
    knowledge = Knowledge.load(bundle)
    load_seconds = time.perf_counter() - started
    questions = make_questions(knowledge, args.data, count=args.questions, seed=args.seed)
    outside = unknown_questions(knowledge, args.text, count=args.questions, seed=args.seed)

    typos = with_typos(questions, knowledge, seed=args.seed)
    misspelt = quality(knowledge, typos)
    one = quality(knowledge, questions)
    two = quality(Knowledge(knowledge.bundle, linker=knowledge.linker, guide_config=GuideConfig(hops=2)), questions)
    abstain_outside = sum(knowledge.guide(q).abstained for q in outside) / len(outside)
    logger.info("quality 1 hop %s; 2 hops %s; abstention outside %.3f", one, two, abstain_outside)

    texts = [q for q, _, _ in questions]
    for question in texts[:20]:
        knowledge.guide(question)  # warm-up
    latencies = []
    for question in texts:
        started = time.perf_counter()
        knowledge.guide(question)
        latencies.append(time.perf_counter() - started)
    local = percentiles(latencies)
    http1 = http_latency(home, texts, clients=1, requests=len(texts))
    http16 = http_latency(home, texts, clients=16, requests=2 * len(texts))
    logger.info("latency in-process %s, http x1 %s, http x16 %s", local, http1, http16)

    calibration = knowledge.bundle.calibration
    info = knowledge.info()
    body = f"""## Knowledge guiding (`bench/guide.py`)

ENTITY snapshot 4 (lkge run, {info.num_entities:,} entities, {info.num_facts:,} known training facts), names from
`fb15k237_text`; {len(questions)} questions "What is the <relation> of <head>?" from test triples (held out from the
bundle), {len(outside)} questions about FB15k-237 entities that are not in the graph. Guide defaults
(`GuideConfig()`: hashing encoder, at most 8 known + 4 inferred facts, min confidence 0.15). Bundle load +
linker build {load_seconds:.1f} s. {dt.date.today()}, {platform.processor() or platform.machine()},
{torch.get_num_threads()} torch threads.

{quality_table(one, two)}

Abstention on questions about entities not in the graph: **{abstain_outside:.3f}**. With one letter dropped from
the head's name ({len(typos)} of the questions): the head is the first entity in {misspelt["linking@1"]:.3f}, among
the anchors in {misspelt["linking@anchors"]:.3f}; abstained {misspelt["abstained"]:.3f}; Hits@context
{misspelt["hits_any"]:.3f}.
Confidence calibration (fitted on validation facts, measured on the held-out half): ECE
{calibration.ece:.3f}, Brier {calibration.brier:.3f}.

{latency_table(local, http1, http16)}
"""
    print(body)
    if not args.no_write:
        write_section("guide", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
