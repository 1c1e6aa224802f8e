"""``evergraph check`` and ``evergraph explain`` against a home's champion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evergraph.kg.service.cli import main
from evergraph.kg.store.bundle import Bundle
from evergraph.kg.store.home import EvergraphHome


def _facts(bundle: Bundle) -> list[tuple[str, str, str]]:
    born = bundle.relations.id("born_in")
    person, city = next((h, t) for h, r, t in bundle.facts.facts[:, :3].tolist() if r == born)
    label = bundle.entities.label
    return [
        (label(city), "located_in", label(person)),  # a person as what a city is located in
        (label(person), "born_in", label(city)),  # known and true
        ("person/someone_new", "born_in", label(city)),  # an entity new to the champion
    ]


def test_check_json_one_object_per_fact_in_order(
    knowledge_home: EvergraphHome, example_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = Bundle.load(knowledge_home.bundle_dir("2"))
    facts = _facts(bundle)
    file = tmp_path / "new.txt"
    file.write_text("".join(f"{h}\t{r}\t{t}\n" for h, r, t in facts), encoding="utf-8")
    home = str(knowledge_home.root)
    # no filter in the home yet and no --data: a clear error, not a trace
    assert main(["check", str(file), "--home", home, "--json"]) == 2
    assert "--data" in capsys.readouterr().out
    assert main(["check", str(file), "--home", home, "--data", str(example_data), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["head"], r["relation"], r["tail"]) for r in rows] == facts
    assert {"probability", "reason"} <= set(rows[0])
    assert rows[0]["probability"] < 0.5 and "never been the tail of located in" in rows[0]["reason"]
    assert rows[1]["probability"] == 1.0 and rows[1]["scored"] == "known" and rows[2]["scored"] == "partial"
    # the filter is now kept in the home: no --data needed, and the table form prints the suspects
    assert main(["check", str(file), "--home", home]) == 0
    assert "1 suspect(s) of 3 fact(s)" in capsys.readouterr().out


def test_check_reports_a_bad_line(knowledge_home: EvergraphHome, tmp_path: Path, capsys) -> None:
    file = tmp_path / "bad.txt"
    file.write_text("a\tb\n", encoding="utf-8")
    assert main(["check", str(file), "--home", str(knowledge_home.root)]) == 2
    assert "bad.txt:1" in capsys.readouterr().out


def test_explain_prints_paths(knowledge_home: EvergraphHome, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = Bundle.load(knowledge_home.bundle_dir("2"))
    citizen = bundle.relations.id("citizen_of")
    h, _, t = bundle.facts.facts[bundle.facts.facts[:, 1] == citizen][0, :3].tolist()
    head, tail = bundle.entities.label(h), bundle.entities.label(t)
    assert main(["explain", head, "citizen_of", tail, "--home", str(knowledge_home.root), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["found"] and result["known"] and result["head"]["label"] == head
    assert main(["explain", head, "citizen_of", tail, "--home", str(knowledge_home.root)]) == 0
    out = capsys.readouterr().out
    assert "known; best supporting rule confidence" in out
    assert main(["explain", "Nobody Atall", "citizen_of", tail, "--home", str(knowledge_home.root)]) == 1
