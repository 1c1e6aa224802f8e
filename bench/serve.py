"""Server throughput benchmark: ``POST /guide`` of ``evergraph serve --workers N`` against the in-process rate;
writes the ``serve`` section of ``bench/RESULTS.md``.

1. A home with a champion that carries its mined rules, as the pipeline's bundles do, in ``bench/runs/serve-home``
   (written once): snapshot 2 of the ENTITY lkge run with the FB15k-237 names (``bench/lifelong.py`` and
   ``bench/guide.py`` leave them in ``bench/runs``), else the example graph (``--home`` picks another home).
2. Questions from the champion's known facts ("What is the place of birth of Jeremy Irons?": a fact's relation
   phrase and its head's name), the same list for every measurement.
3. **In-process**: ``Knowledge.guide`` on the list, one process, one question after the other (the
   reference rate: what one process does when nothing waits on the network).
4. **Server**: ``evergraph serve --workers N`` (real processes, real HTTP) for each ``--workers``; for each
   number of concurrent clients (``--clients``), a closed loop of ``--requests`` requests over keep-alive
   connections (httpx, asyncio); throughput, p50 and p95 latency, the ratio to the in-process rate, and the CPU
   the server processes and this client spent per request.

    python bench/serve.py [--workers 1,2] [--clients 1,16,64] [--requests 400] [--no-write]

Run it under the team's lock on a shared machine: ``flock /tmp/evergraph-heavy.lock python bench/serve.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import platform
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._results import write_section  # noqa: E402
from evergraph.flows.services import free_port, start_healthy, stop_process  # noqa: E402
from evergraph.kg.knowledge.guide import relation_phrase  # noqa: E402
from evergraph.kg.knowledge.knowledge import Knowledge, knowledge_options  # noqa: E402
from evergraph.kg.store.bundle import load_champion  # noqa: E402
from evergraph.kg.store.home import EvergraphHome  # noqa: E402

logger = logging.getLogger("bench.serve")

ENTITY_RUN = ROOT / "bench" / "runs" / "ENTITY-lkge-lkge-paper"
NAMES = ROOT / "bench" / "runs" / "guide-home" / "names"
HOME = ROOT / "bench" / "runs" / "serve-home"


def bench_home(root: Path) -> EvergraphHome:
    """A home at ``root`` whose champion carries mined rules, as the pipeline's bundles do (reused when present):
    snapshot 2 of the ENTITY lkge run with the FB15k-237 names when ``bench/lifelong.py`` and ``bench/guide.py``
    left them in ``bench/runs``, else the example graph learned with the demo settings (snapshots 0-1)."""
    from evergraph.kg.knowledge.bundle_trust import write_rules_file
    from evergraph.kg.store.bundle_writer import switch_pointer, write_bundle

    home = EvergraphHome(root)
    if home.champion_pointer.exists():
        return home
    if (ENTITY_RUN / "checkpoints").is_dir() and (NAMES / "entity_names.tsv").is_file():
        run, snapshot, names = ENTITY_RUN, 2, NAMES
    else:
        from evergraph.kg.engine.example import example_config, write_example_dataset
        from evergraph.kg.engine.lifelong import LifelongRun

        data = write_example_dataset(root / "data", seed=0)
        run, snapshot, names = root / "run", 1, None
        LifelongRun(data=data, out=run, config=example_config(), show_progress=False).run(upto=snapshot)
    bundle = home.bundle_dir("1")
    write_bundle(run_dir=run, snapshot=snapshot, dest=bundle, version="1", names=names, extras=(write_rules_file,))
    switch_pointer(pointer=home.champion_pointer, bundle=bundle, version="1")
    return home


def questions(knowledge: Knowledge, *, count: int, seed: int) -> list[str]:
    """``count`` questions "What is the <relation> of <head>?" from random known facts of the champion."""
    bundle = knowledge.bundle
    entities, relations = bundle.entities.labels, bundle.relations.labels
    rng = random.Random(seed)
    facts = bundle.facts.facts
    out = []
    for row in rng.sample(range(len(facts)), min(count, len(facts))):
        head, relation = int(facts[row, 0]), int(facts[row, 1])
        label = relations[relation]
        phrase = relation_phrase(label, bundle.relation_names.get(label))
        name = bundle.entity_names.get(entities[head], entities[head])
        out.append(f"What is the {phrase} of {name}?")
    return out


@dataclass
class Measure:
    """One setting's figures (latencies in ms)."""

    name: str
    clients: int
    requests: int
    seconds: float
    p50: float
    p95: float
    server_cpu_ms: float | None = None
    client_cpu_ms: float | None = None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def in_process(knowledge: Knowledge, items: list[str], *, requests: int) -> Measure:
    """``knowledge.guide`` one question after the other, ``requests`` times (after 20 warm-up questions)."""
    for question in items[:20]:
        knowledge.guide(question)
    latencies = []
    cpu = time.process_time()
    started = time.perf_counter()
    for i in range(requests):
        begin = time.perf_counter()
        knowledge.guide(items[i % len(items)])
        latencies.append(time.perf_counter() - begin)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    values = np.array(latencies) * 1000
    return Measure(
        name="in-process",
        clients=1,
        requests=requests,
        seconds=seconds,
        p50=float(np.percentile(values, 50)),
        p95=float(np.percentile(values, 95)),
        server_cpu_ms=1000 * cpu / requests,
    )


async def _drive(url: str, items: list[str], *, clients: int, requests: int) -> tuple[float, list[float]]:
    """``clients`` concurrent closed loops sharing ``requests`` POST /guide; (seconds, latencies)."""
    latencies: list[float] = []
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:

        async def loop() -> None:
            for i in counter:
                begin = time.perf_counter()
                response = await http.post("/guide", json={"question": items[i % len(items)]})
                response.raise_for_status()
                latencies.append(time.perf_counter() - begin)

        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(clients)))
        return time.perf_counter() - started, latencies


async def _warm(url: str, items: list[str], *, connections: int, rounds: int) -> None:
    """``rounds`` questions on each of ``connections`` fresh connections (the questions not measured first)."""
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:

        async def loop(offset: int) -> None:
            for i in range(rounds):
                question = items[-1 - (offset * rounds + i) % len(items)]
                (await http.post("/guide", json={"question": question})).raise_for_status()

        await asyncio.gather(*(loop(c) for c in range(connections)))


def _settled(processes: list[psutil.Process], *, timeout: float = 300) -> None:
    """Wait until ``processes`` stop using CPU (every worker has loaded the champion)."""
    deadline = time.monotonic() + timeout
    before = _cpu(processes)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = _cpu(processes)
        if now - before < 0.05:
            return
        before = now


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def server(
    home: EvergraphHome, items: list[str], *, workers: int, clients: list[int], requests: int, logs: Path
) -> list[Measure]:
    """``evergraph serve --workers workers`` in a subprocess, driven with each number of ``clients``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "evergraph.kg.service.cli", "serve", "--home", str(home.root)]
    command += ["--port", str(port), "--workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = start_healthy(f"serve-{workers}", command, env=env, logs=logs, url=url, health="/healthz")
    out = []
    try:
        top = psutil.Process(started.process.pid)
        deadline = time.monotonic() + 300
        while workers > 1 and len(top.children(recursive=True)) < workers and time.monotonic() < deadline:
            time.sleep(0.2)
        processes = [top, *top.children(recursive=True)]
        _settled(processes)
        asyncio.run(_warm(url, items, connections=8 * workers, rounds=4))
        me = psutil.Process()
        for n in clients:
            server_cpu, client_cpu = _cpu(processes), _cpu([me])
            seconds, latencies = asyncio.run(_drive(url, items, clients=n, requests=requests))
            server_cpu, client_cpu = _cpu(processes) - server_cpu, _cpu([me]) - client_cpu
            values = np.array(latencies) * 1000
            measure = Measure(
                name=f"serve --workers {workers}",
                clients=n,
                requests=len(latencies),
                seconds=seconds,
                p50=float(np.percentile(values, 50)),
                p95=float(np.percentile(values, 95)),
                server_cpu_ms=1000 * server_cpu / len(latencies),
                client_cpu_ms=1000 * client_cpu / len(latencies),
            )
            logger.info(
                "%s, %d clients: %.1f req/s, p50 %.1f ms, p95 %.1f ms",
                measure.name,
                n,
                measure.rate,
                measure.p50,
                measure.p95,
            )
            out.append(measure)
    finally:
        stop_process(started)
    return out


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "kg/service", "bench/serve.py"], cwd=ROOT, capture_output=True, text=True
    )
    return done.stdout.strip() + (" + uncommitted serving changes" if dirty.stdout.strip() else "")


def table(reference: Measure, measures: list[Measure]) -> str:
    lines = [
        "| setting | clients | requests | req/s | x in-process | p50 ms | p95 ms | server CPU ms/req "
        "| client CPU ms/req |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in [reference, *measures]:
        client = "" if m.client_cpu_ms is None else f"{m.client_cpu_ms:.1f}"
        lines.append(
            f"| {m.name} | {m.clients} | {m.requests} | {m.rate:.1f} | {m.rate / reference.rate:.2f} | {m.p50:.1f} | "
            f"{m.p95:.1f} | {m.server_cpu_ms:.1f} | {client} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=None, help="a home with a champion (default: see above)")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    parser.add_argument("--clients", default="1,16,64", help="comma-separated concurrent clients (default 1,16,64)")
    parser.add_argument("--requests", type=int, default=400, help="requests per measurement (default 400)")
    parser.add_argument("--questions", type=int, default=200, help="distinct questions (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print the table, do not touch RESULTS.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would cost the client's CPU

    home = EvergraphHome(args.home) if args.home is not None else bench_home(HOME)
    bundle = load_champion(home)
    knowledge = Knowledge(bundle, **knowledge_options(hops=None, encoder=None, relation_encoder=None))
    items = questions(knowledge, count=args.questions, seed=args.seed)
    load = os.getloadavg()[0]
    reference = in_process(knowledge, items, requests=args.requests)
    logger.info("in-process: %.1f req/s, p50 %.1f ms", reference.rate, reference.p50)
    measures: list[Measure] = []
    clients = [int(c) for c in args.clients.split(",")]
    for workers in [int(w) for w in args.workers.split(",")]:
        logs = ROOT / "bench" / "runs" / "serve-logs"
        measures += server(home, items, workers=workers, clients=clients, requests=args.requests, logs=logs)
    in_process_again = in_process(knowledge, items, requests=args.requests)  # did the machine's load change?
    after = os.getloadavg()[0]
    result = table(reference, measures)
    print(result)
    if args.no_write:
        return 0
    best = max((m for m in measures if m.clients > 1), key=lambda m: m.rate, default=None)
    verdict = (
        "n/a"
        if best is None
        else f"{best.rate / reference.rate:.2f}x ({best.name}, {best.clients} clients): "
        f"{'met' if best.rate >= 1.6 * reference.rate else 'missed'}"
    )
    where = home.root.relative_to(ROOT) if home.root.is_relative_to(ROOT) else home.root
    body = f"""## Server throughput: `POST /guide` of `evergraph serve --workers N` (`python bench/serve.py`)

Machine: {platform.machine()} {os.cpu_count()}-core CPU shared with other jobs (load average {load:.1f} before,
{after:.1f} after); {dt.date.today()}; commit {commit()}. Champion: version {bundle.version} (snapshot
{bundle.snapshot}, {len(bundle.entities):,} entities) from `{where}`;
{len(items)} questions from its known facts ("What is the <relation> of <head>?"), default guide (2 hops, hashing
linker, MiniLM relation encoder). Each server row: {args.requests} requests in closed loops over keep-alive
connections (httpx, asyncio, this one client process on the same 2 cores), after the workers loaded and answered
32 warm-up questions each. The
in-process reference is `Knowledge.guide` one question after the other in one process ({reference.rate:.1f}
req/s before the servers, {in_process_again.rate:.1f} after). CPU ms/req: CPU time of the server's processes and
of the client process per request.

{result}

Target (issue 11): /guide throughput >= 1.6x the in-process rate on 2 cores: {verdict}.
"""
    write_section("serve", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
