"""Rule mining and explanations on the example KG: the rules its generator planted, paths that exist."""

from pathlib import Path

import numpy as np
import pytest
import torch

from evergraph.kg.knowledge.explain import ExplainConfig, explain_fact
from evergraph.kg.knowledge.rules import RuleConfig, _join, mine_rules, rules_of
from evergraph.kg.store.bundle import Bundle
from evergraph.kg.store.facts import FactTable


@pytest.fixture(scope="module")
def bundle(champion_bundle: Path) -> Bundle:
    return Bundle.load(champion_bundle)


def _body(bundle: Bundle, *names: str) -> tuple[int, ...]:
    """Model relation ids of a body written as relation labels, ``^-1`` for inverse steps."""
    ids = []
    for name in names:
        inverse = name.endswith("^-1")
        ids.append(2 * bundle.relations.id(name.removesuffix("^-1")) + int(inverse))
    return tuple(ids)


def test_join_pairs_equal_keys() -> None:
    left, right = np.array([3, 1, 3, 7]), np.array([3, 3, 1, 5])
    li, ri = _join(left, right)
    assert sorted(zip(li.tolist(), ri.tolist(), strict=True)) == [(0, 0), (0, 1), (1, 2), (2, 0), (2, 1)]


@pytest.mark.parametrize(
    ("relation", "body"),
    [
        ("citizen_of", ("born_in", "located_in")),  # citizen_of is mostly born_in composed with located_in
        ("friend_of", ("friend_of^-1",)),  # symmetric
        ("colleague_of", ("colleague_of^-1",)),  # symmetric
        ("lives_in", ("works_for", "headquartered_in")),  # often the employer's city
    ],
)
def test_mining_finds_the_rules_the_generator_planted(bundle: Bundle, relation: str, body: tuple[str, ...]) -> None:
    rules = rules_of(bundle.facts)
    found = {rule.body: rule for rule in rules.of(bundle.relations.id(relation))}
    rule = found.get(_body(bundle, *body))
    assert rule is not None, sorted(found)
    assert 0.1 <= rule.confidence <= 1 and rule.support > 0 and 0 < rule.head_coverage <= 1


def test_mining_is_deterministic_and_cached(bundle: Bundle) -> None:
    assert rules_of(bundle.facts) is rules_of(bundle.facts)
    config = RuleConfig(samples_per_relation=50, seed=3)
    assert mine_rules(bundle.facts, config=config).rules == mine_rules(bundle.facts, config=config).rules


def test_every_cited_path_exists_in_the_known_facts(bundle: Bundle) -> None:
    facts = bundle.facts
    citizen = bundle.relations.id("citizen_of")
    rows = facts.facts[facts.facts[:, 1] == citizen][:25, :3].tolist()
    explained = 0
    for h, r, t in rows:
        explanation = explain_fact(facts=facts, model=bundle.model, head=h, relation=r, tail=t)
        explained += bool(explanation.paths)
        confidences = [p.rule.confidence for p in explanation.paths]
        assert confidences == sorted(confidences, reverse=True)
        for path in explanation.paths:
            assert len(path.facts) == len(path.rule.body) <= 3
            node = h
            for row, step in zip(path.facts, path.rule.body, strict=True):
                fh, fr, ft = facts.facts[row, :3].tolist()
                assert fr == step // 2  # the fact is of the body's relation ...
                assert (fh, ft) != (h, t) or fr != r  # ... never the explained fact itself ...
                node_from, node_to = (fh, ft) if step % 2 == 0 else (ft, fh)
                assert node_from == node  # ... and the steps chain from h ...
                node = node_to
            assert node == t  # ... to t
        for row, similarity in explanation.analogies:
            assert facts.facts[row, 1] == r and 0 < similarity <= 1
            assert tuple(facts.facts[row, :3].tolist()) != (h, r, t)
    assert explained >= 15  # most citizenships are explained by a path


def test_retracted_facts_never_appear_in_an_explanation(bundle: Bundle) -> None:
    facts = bundle.facts
    citizen = bundle.relations.id("citizen_of")
    h, r, t = facts.facts[facts.facts[:, 1] == citizen][0, :3].tolist()
    first = explain_fact(facts=facts, model=None, head=h, relation=r, tail=t)
    assert first.paths
    used = {row for path in first.paths for row in path.facts}
    # retract every fact the explanation cited: the fact table without them is what a bundle then serves
    keep = torch.tensor([i not in used for i in range(len(facts))])
    table = FactTable(facts.facts[keep], num_entities=facts.num_entities, num_relations=facts.num_relations)
    again = explain_fact(facts=table, model=None, head=h, relation=r, tail=t, rules=rules_of(facts))
    removed = {tuple(facts.facts[i, :3].tolist()) for i in used}
    for path in again.paths:
        assert not {tuple(table.facts[i, :3].tolist()) for i in path.facts} & removed


def test_no_rule_no_path(bundle: Bundle) -> None:
    explanation = explain_fact(
        facts=bundle.facts, model=bundle.model, head=0, relation=0, tail=1, config=ExplainConfig(max_analogies=0)
    )
    assert explanation.confidence == (explanation.paths[0].rule.confidence if explanation.paths else 0.0)
    assert explanation.analogies == []
