"""Explanations of a fact ``(h, r, t)`` from the known facts: rule paths and analogies.

- **Paths**: for every mined rule of ``r`` (:mod:`evergraph.kg.knowledge.rules`, best confidence first), the
  paths from ``h`` to ``t`` of the known facts that instantiate its body (distinct intermediate entities, never the
  fact itself). Each path is the list of fact rows it walks; paths are ranked by the confidence of their rule, at
  most ``max_paths_per_rule`` per rule and ``max_paths`` in all.
- **Analogies**: known facts ``(h', r, t')`` of the same relation whose head is among the ``neighbours`` entities
  nearest to ``h`` and whose tail is among those nearest to ``t`` in embedding space (cosine of the entity
  vectors), or that share ``h`` or ``t`` with the other end a neighbour; ranked by the mean of the two
  similarities (1 for a shared entity).

Only known facts are ever cited: the bundle's fact table, from which retracted facts are gone.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from pydantic import BaseModel, ConfigDict, Field

from evergraph.kg.knowledge.explain_schemas import Analogy, ExplainResult, RuleRef, SupportingPath
from evergraph.kg.knowledge.rules import Rule, RuleSet, rules_of

if TYPE_CHECKING:
    from evergraph.kg.engine.model import KGEModel
    from evergraph.kg.knowledge.guide import Guide
    from evergraph.kg.knowledge.schemas import Fact
    from evergraph.kg.store.facts import FactTable

__all__ = ["ExplainConfig", "Explanation", "PathEvidence", "explain_fact", "explain_result"]


class ExplainConfig(BaseModel):
    """How much evidence :func:`explain_fact` gathers."""

    model_config = ConfigDict(extra="forbid")

    max_paths: int = Field(5, ge=0, description="supporting paths returned at most")
    max_paths_per_rule: int = Field(2, ge=1, description="paths of one rule at most")
    max_analogies: int = Field(3, ge=0, description="analogous known facts returned at most")
    neighbours: int = Field(20, gt=0, description="embedding neighbours of h and of t searched for analogies")
    max_fanout: int = Field(5000, gt=0, description="entities followed per path step at most (hubs)")


@dataclass(frozen=True)
class PathEvidence:
    """A path of known facts (rows of the fact table, in walking order) instantiating ``rule``."""

    rule: Rule
    facts: tuple[int, ...]


@dataclass
class Explanation:
    """The evidence for one fact: rule paths (best first) and analogous known facts ``(row, similarity)``."""

    head: int
    relation: int
    tail: int
    paths: list[PathEvidence] = field(default_factory=list)
    analogies: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def confidence(self) -> float:
        """The confidence of the best rule with a supporting path (0 without one)."""
        return self.paths[0].rule.confidence if self.paths else 0.0


class _RowIndex:
    """Fact row of ``(entity, model relation, other)`` (either direction) for a fact table."""

    def __init__(self, facts: FactTable) -> None:
        rows = facts.facts[:, :3].tolist()
        self.rows: dict[tuple[int, int, int], int] = {}
        for i, (h, r, t) in enumerate(rows):
            self.rows.setdefault((h, 2 * r, t), i)
            self.rows.setdefault((t, 2 * r + 1, h), i)


_ROWS: weakref.WeakKeyDictionary[FactTable, _RowIndex] = weakref.WeakKeyDictionary()


def _row_index(facts: FactTable) -> _RowIndex:
    found = _ROWS.get(facts)
    if found is None:
        found = _RowIndex(facts)
        _ROWS[facts] = found
    return found


def _paths(facts: FactTable, rule: Rule, head: int, tail: int, *, limit: int, fanout: int) -> list[list[int]]:
    """Entity sequences ``[head, ..., tail]`` walking ``rule.body`` through distinct entities (at most ``limit``)."""
    body = rule.body
    if len(body) == 1:
        return [[head, tail]] if tail in set(facts.answers(head, body[0]).tolist()) else []
    # backward set: entities b with b -body[-1]-> tail
    last = set(facts.answers(tail, body[-1] ^ 1).tolist()) - {head, tail}
    found: list[list[int]] = []
    for a in facts.answers(head, body[0]).tolist()[:fanout]:
        if a in (head, tail):
            continue
        if len(body) == 2:
            if a in last:
                found.append([head, a, tail])
        else:
            for b in facts.answers(a, body[1]).tolist()[:fanout]:
                if b in last and b != a:
                    found.append([head, a, b, tail])
                    if len(found) >= limit:
                        return found
        if len(found) >= limit:
            return found
    return found


def explain_fact(
    *,
    facts: FactTable,
    model: KGEModel | None,
    head: int,
    relation: int,
    tail: int,
    rules: RuleSet | None = None,
    config: ExplainConfig | None = None,
) -> Explanation:
    """The evidence for ``(head, relation, tail)`` (base relation id) from ``facts`` (module docstring); ``rules``
    default to :func:`evergraph.kg.knowledge.rules.rules_of` ``(facts)``; without ``model`` no analogies."""
    config = config or ExplainConfig()
    started = time.perf_counter()
    rules = rules if rules is not None else rules_of(facts)
    index = _row_index(facts)
    explanation = Explanation(head, relation, tail)
    for rule in rules.of(relation):
        if len(explanation.paths) >= config.max_paths:
            break
        for nodes in _paths(facts, rule, head, tail, limit=config.max_paths_per_rule, fanout=config.max_fanout):
            steps = zip(nodes[:-1], rule.body, nodes[1:], strict=True)
            rows = tuple(index.rows[(a, r, b)] for a, r, b in steps)
            explanation.paths.append(PathEvidence(rule, rows))
            if len(explanation.paths) >= config.max_paths:
                break
    if model is not None and config.max_analogies:
        explanation.analogies = _analogies(facts, model, head, relation, tail, config=config)
    explanation.seconds = time.perf_counter() - started
    return explanation


@torch.no_grad()
def _analogies(
    facts: FactTable, model: KGEModel, head: int, relation: int, tail: int, *, config: ExplainConfig
) -> list[tuple[int, float]]:
    entity = model.entity.detach()
    pair = torch.nn.functional.normalize(entity[[head, tail]].float(), dim=1)
    table = torch.nn.functional.normalize(entity.float(), dim=1)
    similarity = pair @ table.T  # [2, N]
    k = min(config.neighbours + 1, entity.shape[0])
    near_h = dict(zip(*[x.tolist() for x in reversed(similarity[0].topk(k))], strict=True))
    near_t = dict(zip(*[x.tolist() for x in reversed(similarity[1].topk(k))], strict=True))
    near_h[head], near_t[tail] = 1.0, 1.0
    found: dict[int, float] = {}
    for h2, sim_h in near_h.items():
        fact_rows, relations, others = facts.about_arrays(h2)
        pick = relations == 2 * relation
        for row, t2 in zip(fact_rows[pick].tolist(), others[pick].tolist(), strict=True):
            if (h2, t2) == (head, tail) or t2 not in near_t:
                continue
            score = (sim_h + near_t[t2]) / 2
            if score > found.get(row, -1.0):
                found[row] = score
    ranked = sorted(found.items(), key=lambda item: (-item[1], item[0]))
    return [(row, round(score, 4)) for row, score in ranked[: config.max_analogies]]


def relation_text(guide: Guide, step: int) -> str:
    """A body step read as text: ``born in`` or ``born in (inverse)``."""
    ref = guide.relation_ref(step // 2)
    return ref.name + (" (inverse)" if step % 2 else "")


def rule_ref(guide: Guide, rule: Rule) -> RuleRef:
    """The :class:`RuleRef` of ``rule``, e.g. ``born in (x, a) & located in (a, y) => citizen of (x, y)``."""
    names = "abcdefg"
    nodes = ["x", *names[: len(rule.body) - 1], "y"]
    steps = []
    for i, step in enumerate(rule.body):
        a, b = nodes[i], nodes[i + 1]
        name = guide.relation_ref(step // 2).name
        steps.append(f"{name}({b}, {a})" if step % 2 else f"{name}({a}, {b})")
    text = " & ".join(steps) + f" => {guide.relation_ref(rule.relation).name}(x, y)"
    body = [guide.relation_ref(step // 2, inverse=bool(step % 2)) for step in rule.body]
    return RuleRef(
        text=text, body=body, confidence=rule.confidence, support=rule.support, head_coverage=rule.head_coverage
    )


def explain_result(
    guide: Guide, *, head: int, relation: int, tail: int, query: str, config: ExplainConfig | None = None
) -> ExplainResult:
    """The :class:`ExplainResult` of ``(head, relation, tail)`` (ids) over the guide's bundle."""
    bundle = guide.bundle
    facts = bundle.facts
    explanation = explain_fact(facts=facts, model=bundle.model, head=head, relation=relation, tail=tail, config=config)

    def known(row: int) -> Fact:
        h, r, t, s = facts.facts[row].tolist()
        return guide.fact(h, r, t, kind="known", score=1.0, snapshot=s)

    paths = [
        SupportingPath(rule=rule_ref(guide, path.rule), facts=[known(row) for row in path.facts])
        for path in explanation.paths
    ]
    analogies = [Analogy(fact=known(row), similarity=similarity) for row, similarity in explanation.analogies]
    return ExplainResult(
        query=query,
        found=True,
        head=guide.entity_ref(head),
        relation=guide.relation_ref(relation),
        tail=guide.entity_ref(tail),
        known=facts.contains(head, relation, tail),
        confidence=explanation.confidence,
        paths=paths,
        analogies=analogies,
        version=bundle.version,
    )
