"""`make demo`'s showcase question, asked of a champion trained with the demo-sized settings: every fact the
guide cites is true in the example world (train, valid and test facts of every snapshot), and the answer is
among them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from evergraph.kg.engine.example import EXAMPLE_THREADS, example_config, write_example_dataset
from evergraph.kg.engine.lifelong import LifelongRun
from evergraph.kg.service.client import KnowledgeClient
from evergraph.kg.store.bundle_writer import switch_pointer, write_bundle
from evergraph.kg.store.home import EvergraphHome

ROOT = Path(__file__).resolve().parents[2]


def showcase_question() -> str:
    """The question `make demo` asks (from the Makefile, so this test follows it)."""
    found = re.search(r'evergraph guide "([^"]+)"', (ROOT / "Makefile").read_text())
    assert found, "the Makefile's demo target asks no guide question"
    return found.group(1)


def example_world(data: Path) -> set[tuple[str, str, str]]:
    facts = set()
    for split in data.glob("*/*.txt"):
        facts.update(tuple(line.split("\t")) for line in split.read_text().splitlines() if line)
    return facts


@pytest.mark.slow
def test_the_showcase_answer_cites_only_true_facts(tmp_path: Path) -> None:
    data = write_example_dataset(tmp_path / "example-data", seed=0)  # what `evergraph run` writes
    threads = torch.get_num_threads()
    torch.set_num_threads(EXAMPLE_THREADS)
    try:
        LifelongRun(data=data, out=tmp_path / "run", config=example_config(device="cpu"), show_progress=False).run()
    finally:
        torch.set_num_threads(threads)
    home = EvergraphHome(tmp_path / "home")
    bundle = write_bundle(run_dir=tmp_path / "run", snapshot=4, dest=home.bundle_dir("1"), version="1")
    switch_pointer(pointer=home.champion_pointer, bundle=bundle, version="1")
    with KnowledgeClient.local(home.root, watch=False) as client:
        result = client.guide(showcase_question())
    assert not result.abstained, result.reason
    world = example_world(data)
    cited = {
        (f.tail.label, f.relation.label, f.head.label)
        if f.relation.inverse
        else (f.head.label, f.relation.label, f.tail.label)
        for f in result.facts
    }
    assert cited and cited <= world, sorted(cited - world)
    entity, relation = result.entities[0].label, result.relations[0].label
    assert any(h == entity and r == relation for h, r, _ in cited), result.context  # the question is answered
