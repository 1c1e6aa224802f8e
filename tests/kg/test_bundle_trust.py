"""Rules and the plausibility filter are made when a bundle is written and read back, not made again; a bundle
without them still works (mined / fitted on first use)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evergraph.kg.knowledge import rules as rules_module
from evergraph.kg.knowledge.bundle_trust import TRUST_FILES
from evergraph.kg.knowledge.explain import explain_result
from evergraph.kg.knowledge.guide import Guide
from evergraph.kg.knowledge.plausibility import PLAUSIBILITY_FILE, load_or_fit, plausibility_path
from evergraph.kg.knowledge.rules import RULES_FILE, bundle_rules, mine_rules
from evergraph.kg.store.bundle import Bundle
from evergraph.kg.store.bundle_writer import write_bundle


@pytest.fixture(scope="module")
def trusted(knowledge_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("trusted") / "bundle"
    return write_bundle(run_dir=knowledge_run, snapshot=1, dest=dest, version="7", extras=TRUST_FILES)


def _no_mining(*args: object, **kwargs: object) -> None:
    raise AssertionError("rules were mined again")


def test_the_bundle_carries_its_rules_and_filter(
    trusted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = json.loads((trusted / "manifest.json").read_text())["files"]
    assert {RULES_FILE, PLAUSIBILITY_FILE} <= set(files)  # listed, so verified like the other files
    bundle = Bundle.load(trusted)
    mined = mine_rules(bundle.facts)
    monkeypatch.setattr(rules_module, "mine_rules", _no_mining)
    carried = bundle_rules(bundle)
    assert carried.rules == mined.rules and len(carried) > 0
    fitted = load_or_fit(bundle, home_root=tmp_path, data=None)  # no source needed: nothing is fitted
    assert fitted.version == "7" and not plausibility_path(tmp_path, "7").exists()
    citizen = bundle.relations.id("citizen_of")
    h, _, t = bundle.facts.facts[bundle.facts.facts[:, 1] == citizen][0, :3].tolist()
    result = explain_result(Guide(bundle), head=h, relation=citizen, tail=t, query="q")
    assert result.paths  # explained with the carried rules


def test_a_bundle_without_them_mines_and_fits_on_first_use(
    champion_bundle: Path, example_data: Path, tmp_path: Path
) -> None:
    assert not (champion_bundle / RULES_FILE).exists()
    bundle = Bundle.load(champion_bundle)
    assert bundle_rules(bundle) is bundle_rules(bundle) and len(bundle_rules(bundle)) > 0
    load_or_fit(bundle, home_root=tmp_path, data=example_data)
    assert plausibility_path(tmp_path, bundle.version).is_file()
