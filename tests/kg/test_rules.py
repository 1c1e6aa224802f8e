"""Rule mining and explanations on the example KG: the rules its generator planted, paths that exist; the
vectorised miner against a plain-Python reference on small random graphs."""

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from evergraph.kg.knowledge import rules as rules_module
from evergraph.kg.knowledge.explain import ExplainConfig, explain_fact
from evergraph.kg.knowledge.rules import Rule, RuleConfig, _join, _row_classes, mine_rules, rules_of
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


def test_equal_rows_share_a_class() -> None:
    rows = [[1, 4], [], [1, 4], [4], [0, 5], [1, 4], [], [2, 3]]  # [0, 5] and [2, 3]: same length and sum
    indices, indptr = np.concatenate([r for r in rows if r]), np.cumsum([0, *map(len, rows)])
    matrix = sp.csr_matrix((np.ones(len(indices), dtype=bool), indices, indptr), shape=(len(rows), 6))
    assert _row_classes(matrix).tolist() == [0, 1, 0, 3, 4, 0, 1, 7]


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


def _random_facts(
    seed: int, *, entities: int = 40, relations: int = 3, facts: int = 260, hubs: str = "tails"
) -> FactTable:
    """Random facts with a few hubs among the tails (or heads), duplicate facts and self-loops (the cases the
    vectorised joins must keep)."""
    rng = np.random.default_rng(seed)
    heads, tails = rng.integers(0, entities, facts), rng.integers(0, entities, facts)
    (tails if hubs == "tails" else heads)[: facts // 4] = rng.integers(0, 3, facts // 4)
    rows = np.stack([heads, rng.integers(0, relations, facts), tails, np.zeros(facts, dtype=np.int64)], axis=1)
    rows = np.concatenate([rows, rows[: facts // 10], [[5, 1, 5, 0], [7, 0, 7, 0]]])  # duplicates, self-loops
    return FactTable(torch.tensor(rows), num_entities=entities, num_relations=relations)


def _reference_rules(facts: FactTable, config: RuleConfig) -> dict[int, list[Rule]]:
    """The mining of the module docstring written plainly (a path search per sampled fact, a walk per head), with
    the same random draws in the same order."""
    known = facts.facts[:, :3].numpy()
    out: dict[int, list[tuple[int, int]]] = defaultdict(list)  # entity -> (model relation, entity), duplicates kept
    for h, r, t in known.tolist():
        out[h].append((2 * r, t))
        out[t].append((2 * r + 1, h))
    pairs: dict[int, set[tuple[int, int]]] = defaultdict(set)
    for x, edges in list(out.items()):
        for step, y in edges:
            pairs[step].add((x, y))
    found: dict[int, list[Rule]] = {}
    for relation in sorted(set(known[:, 1].tolist())):
        rng = np.random.default_rng([config.seed, relation])  # each relation its own stream
        sample = known[known[:, 1] == relation]
        if len(sample) > config.samples_per_relation:
            sample = sample[rng.choice(len(sample), size=config.samples_per_relation, replace=False)]
        hits: Counter[tuple[int, ...]] = Counter()
        for h, _, t in sample.tolist():
            bodies = set()
            for r1, a in out[h]:
                if a == t and r1 != 2 * relation:
                    bodies.add((r1,))
                if a in (h, t) or config.max_length < 2:
                    continue
                for r2, b in out[a]:
                    if b == t:
                        bodies.add((r1, r2))
                    if config.max_length < 3 or b in (h, t, a) or len(out[a]) > config.max_middle_degree:
                        continue
                    bodies.update((r1, r2, r3) for r3, c in out[b] if c == t)
            hits.update(bodies)
        candidates = sorted(((b, k) for b, k in hits.items() if k >= config.min_support), key=lambda i: (-i[1], i[0]))
        heads_of: dict[int, list[int]] = {}
        rules = []
        for body, hit in candidates[: config.max_candidates]:
            if body[0] not in heads_of:
                heads = np.array(sorted({x for x, _ in pairs[body[0]]}), dtype=np.int64)
                if len(heads) > config.confidence_sample:
                    heads = np.sort(rng.choice(heads, size=config.confidence_sample, replace=False))
                heads_of[body[0]] = heads.tolist()
            reached = set()
            for x in heads_of[body[0]]:
                frontier = {x}
                for step in body:
                    frontier = {y for z in frontier for s, y in out[z] if s == step}
                reached.update((x, y) for y in frontier if y != x)
            confidence = len(reached & pairs[2 * relation]) / len(reached) if reached else 0.0
            if confidence >= config.min_confidence:
                coverage = hit / len(sample)
                total = int((known[:, 1] == relation).sum())
                rules.append(Rule(relation, body, round(confidence, 4), round(coverage * total, 1), round(coverage, 4)))
        rules.sort(key=lambda rule: (-rule.confidence, -rule.support, rule.body))
        if rules:
            found[relation] = rules[: config.max_rules_per_relation]
    return found


@pytest.mark.parametrize(
    "config",
    [
        RuleConfig(min_confidence=0.0),
        # samples and confidence heads drawn, hubs skipped in the middle of length-3 paths, candidates cut
        RuleConfig(samples_per_relation=30, confidence_sample=7, max_middle_degree=15, max_candidates=25, seed=4),
        RuleConfig(max_length=2, min_support=1, min_confidence=0.0, max_rules_per_relation=100),
        RuleConfig(max_length=1, min_support=1, min_confidence=0.0),
    ],
)
@pytest.mark.parametrize(("seed", "hubs"), [(0, "tails"), (1, "tails"), (0, "heads"), (1, "heads")])
def test_mining_equals_a_plain_reference(seed: int, hubs: str, config: RuleConfig) -> None:
    facts = _random_facts(seed, hubs=hubs)
    expected = _reference_rules(facts, config)
    assert sum(len(rules) for rules in expected.values()) > 0
    assert mine_rules(facts, config=config).rules == expected


def test_mining_in_small_batches_equals_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Samples joined a few at a time, products split into many blocks, no direct row table: the same rules."""
    facts = _random_facts(2, entities=30)
    config = RuleConfig(min_confidence=0.0, samples_per_relation=60)
    monkeypatch.setattr(rules_module, "_TABLE_CELLS", 7 * 30)
    monkeypatch.setattr(rules_module, "_BLOCK", 50)
    monkeypatch.setattr(rules_module, "_DENSE_ROWS", 0)  # binary searches for the rows of (relation, entity)
    assert mine_rules(facts, config=config).rules == _reference_rules(facts, config)


def test_threads_mine_the_same_rules_as_one() -> None:
    """Relations mined side by side in threads (each with its own random stream) give the rules of one thread."""
    facts = _random_facts(5, entities=60, relations=6, facts=600)
    config = RuleConfig(samples_per_relation=40, confidence_sample=9, min_confidence=0.0)
    one = mine_rules(facts, config=config, workers=1)
    assert len(one) > 0
    assert mine_rules(facts, config=config, workers=3).rules == one.rules
    assert list(mine_rules(facts, config=config, workers=3).rules) == sorted(one.rules)  # relation order
