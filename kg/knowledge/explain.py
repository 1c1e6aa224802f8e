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

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from evergraph.kg.knowledge.explain_schemas import Analogy, ExplainResult, RuleRef, SupportingPath
from evergraph.kg.knowledge.rules import Adjacency, Rule, RuleSet, bundle_rules, rules_of

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


def _out(adjacency: Adjacency, entity: int, relation: int) -> np.ndarray:
    """Entities ``x`` with ``entity -relation-> x`` (a CSR row slice: no copy, no search)."""
    matrix = adjacency.matrices.get(relation)
    if matrix is None:
        return np.empty(0, dtype=np.int32)
    return matrix.indices[matrix.indptr[entity] : matrix.indptr[entity + 1]]


def _paths(adjacency: Adjacency, rule: Rule, head: int, tail: int, *, limit: int, fanout: int) -> list[list[int]]:
    """Entity sequences ``[head, ..., tail]`` walking ``rule.body`` through distinct entities (at most ``limit``),
    with CSR row slices of the relations' adjacency matrices (vectorised; no Python loop over a hub's
    neighbours)."""
    body = rule.body
    first = _out(adjacency, head, body[0])[:fanout]
    if len(body) == 1:
        return [[head, tail]] if bool((first == tail).any()) else []
    last = _out(adjacency, tail, body[-1] ^ 1)[:fanout]  # b with b -body[-1]-> tail
    first = first[(first != head) & (first != tail)]
    last = last[(last != head) & (last != tail)]
    if len(body) == 2:
        return [[head, int(a), tail] for a in np.intersect1d(first, last)[:limit]]
    matrix = adjacency.matrices.get(body[1])
    if matrix is None or not len(first) or not len(last):
        return []
    starts, ends = matrix.indptr[first], matrix.indptr[first + 1]
    counts = ends - starts
    owner = np.repeat(first, counts)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    middle = matrix.indices[np.repeat(starts, counts) + offsets]
    hit = np.isin(middle, last) & (middle != owner)
    return [[head, int(a), int(b), tail] for a, b in zip(owner[hit][:limit], middle[hit][:limit], strict=True)]


_ADJACENCY: weakref.WeakKeyDictionary[FactTable, Adjacency] = weakref.WeakKeyDictionary()


def _adjacency(facts: FactTable) -> Adjacency:
    found = _ADJACENCY.get(facts)
    if found is None:
        found = Adjacency(facts)
        _ADJACENCY[facts] = found
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
    adjacency = _adjacency(facts)
    explanation = Explanation(head, relation, tail)
    for rule in rules.of(relation):
        if len(explanation.paths) >= config.max_paths:
            break
        found = _paths(adjacency, rule, head, tail, limit=config.max_paths_per_rule, fanout=config.max_fanout)
        for nodes in found:
            steps = zip(nodes[:-1], rule.body, nodes[1:], strict=True)
            rows = tuple(index.rows[(a, r, b)] for a, r, b in steps)
            explanation.paths.append(PathEvidence(rule, rows))
            if len(explanation.paths) >= config.max_paths:
                break
    if model is not None and config.max_analogies:
        explanation.analogies = _analogies(facts, model, head, relation, tail, config=config)
    explanation.seconds = time.perf_counter() - started
    return explanation


_UNIT: weakref.WeakKeyDictionary[KGEModel, tuple[int, torch.Tensor]] = weakref.WeakKeyDictionary()


def _unit_rows(model: KGEModel) -> torch.Tensor:
    """The model's entity vectors scaled to unit length (cached per model while its table is unchanged)."""
    entity = model.entity.detach()
    key = entity.data_ptr()
    cached = _UNIT.get(model)
    if cached is None or cached[0] != key or cached[1].shape != entity.shape:
        cached = (key, torch.nn.functional.normalize(entity.float(), dim=1))
        _UNIT[model] = cached
    return cached[1]


@torch.no_grad()
def _analogies(
    facts: FactTable, model: KGEModel, head: int, relation: int, tail: int, *, config: ExplainConfig
) -> list[tuple[int, float]]:
    table = _unit_rows(model)
    pair = table[[head, tail]]
    entity = table
    similarity = pair @ table.T  # [2, N]
    k = min(config.neighbours + 1, entity.shape[0])
    near_h = dict(zip(*[x.tolist() for x in reversed(similarity[0].topk(k))], strict=True))
    near_t = dict(zip(*[x.tolist() for x in reversed(similarity[1].topk(k))], strict=True))
    near_h[head], near_t[tail] = 1.0, 1.0
    found: dict[int, float] = {}
    adjacency, rows = _adjacency(facts), _row_index(facts).rows
    for h2, sim_h in near_h.items():
        for t2 in _out(adjacency, h2, 2 * relation).tolist():
            if (h2, t2) == (head, tail) or t2 not in near_t:
                continue
            row, score = rows[(h2, 2 * relation, t2)], (sim_h + near_t[t2]) / 2
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
    explanation = explain_fact(
        facts=facts,
        model=bundle.model,
        head=head,
        relation=relation,
        tail=tail,
        rules=bundle_rules(bundle),
        config=config,
    )

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


def cite_reasons(
    guide: Guide,
    facts: list[Fact],
    context: str,
    *,
    anchors: set[int] | None = None,
    min_confidence: float = 0.1,
) -> tuple[list[Fact], str, int]:
    """Follow each inferred fact of a guide's numbered ``facts`` by the known facts of its best supporting path
    ("because [2] and [5]"; rules of confidence at least ``min_confidence``, default 0.1).

    A path's facts already in the context are pointed at. Missing ones are added as known facts after the others
    (before the inferred ones; everything is renumbered) the way the guide cites paths itself: walking from a linked
    entity (``anchors``; default the inferred fact's head and tail), the first fact is a hop-1 fact of that entity
    and the second a hop-2 fact ``via`` the first (only with ``hops=2``); a path that would need more (a third
    fact not in the context) or would overflow the token budget is not cited. Returns ``(facts, context, tokens)``.
    """
    from evergraph.kg.knowledge.guide import _line, estimate_tokens

    bundle = guide.bundle
    header = context.split("\n", 1)[0]
    known = [f for f in facts if f.kind == "known"]
    inferred = [f for f in facts if f.kind != "known"]
    added: list[Fact] = []
    because: dict[int, list[tuple[str, int]]] = {}  # inferred citation -> [("old", citation) | ("new", index)]
    present = {(f.head.id, f.relation.id, f.tail.id): f for f in known}
    config = ExplainConfig(max_paths=1, max_analogies=0)

    def render(extra: list[Fact], reasons: dict[int, list[tuple[str, int]]]) -> tuple[list[Fact], str]:
        order = [*known, *extra, *inferred]
        old = {f.citation: n for n, f in enumerate([*known, *inferred], start=1) if f.citation}
        number = {id(f): n for n, f in enumerate(order, start=1)}
        renumber = {f.citation: number[id(f)] for f in [*known, *inferred]}
        out = []
        for f in order:
            update: dict[str, object] = {"citation": number[id(f)]}
            if f.via is not None:
                via = f.via
                update["via"] = renumber.get(via, via) if via in old else number[id(extra[-via - 1])]
            if f.kind != "known" and f.citation in reasons:
                update["because"] = [
                    renumber[ref] if kind == "old" else number[id(extra[ref])] for kind, ref in reasons[f.citation]
                ]
            out.append(f.model_copy(update=update))
        lines = [header]
        for f in out:
            line = _line(f.citation, f)
            if f.because:
                refs = [f"[{n}]" for n in f.because]
                line += " because " + (", ".join(refs[:-1]) + " and " if len(refs) > 1 else "") + refs[-1]
            lines.append(line)
        return out, "\n".join(lines)

    for fact in inferred:
        found = explain_fact(
            facts=bundle.facts,
            model=None,
            head=fact.head.id,
            relation=fact.relation.id,
            tail=fact.tail.id,
            rules=bundle_rules(bundle),
            config=config,
        )
        if not found.paths or found.paths[0].rule.confidence < min_confidence:
            continue
        rows = [tuple(bundle.facts.facts[row].tolist()) for row in found.paths[0].facts]
        ends = anchors if anchors is not None else {fact.head.id, fact.tail.id}
        if fact.head.id not in ends:
            rows.reverse()  # walk from the linked entity
        trial_added, refs, ok = list(added), [], True
        trial_present = dict(present)
        for step, (h, r, t, snap) in enumerate(rows):
            if (h, r, t) in trial_present:
                cited = trial_present[(h, r, t)]
                refs.append(("old", cited.citation) if cited.citation else ("new", trial_added.index(cited)))
                continue
            if step >= 2 or (step == 1 and guide.config.hops < 2):
                ok = False
                break
            via = None
            if step == 1:
                first = trial_present[tuple(rows[0][:3])]
                if first.hop != 1:
                    ok = False
                    break
                via = -(trial_added.index(first) + 1) if not first.citation else first.citation
            new = guide.fact(h, r, t, kind="known", score=0.0, snapshot=snap, hop=step + 1)
            new = new.model_copy(update={"via": via, "citation": 0})
            trial_added.append(new)
            trial_present[(h, r, t)] = new
            refs.append(("new", len(trial_added) - 1))
        if not ok:
            continue
        trial_because = {**because, fact.citation: refs}
        _, text = render(trial_added, trial_because)
        if estimate_tokens(text) > guide.config.max_context_tokens:
            continue
        added, because, present = trial_added, trial_because, trial_present
    if not because:
        return facts, context, estimate_tokens(context)
    out, text = render(added, because)
    return out, text, estimate_tokens(text)
