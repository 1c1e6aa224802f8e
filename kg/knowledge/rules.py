"""Horn rules mined from the known facts: ``body(x, y) => r(x, y)`` with a body path of length 1 to 3.

A body is a sequence of *model* relations (``2r`` forward, ``2r + 1`` inverse; :mod:`evergraph.kg.store.facts`)
walked from ``x`` to ``y`` through distinct intermediate entities, e.g. ``born_in(x, a) & located_in(a, y) =>
citizen_of(x, y)`` is the body ``(2 * born_in, 2 * located_in)`` of ``citizen_of``. Mining, in the manner of AMIE
(Galárraga et al. 2013) but sampled so it stays fast on FB15k-237-sized graphs:

1. **Candidates**: for up to ``samples_per_relation`` facts ``r(h, t)`` of each relation, every path of length
   at most ``max_length`` from ``h`` to ``t`` that does not use the fact itself (a vectorised join of out-edges
   of the heads with in-edges of the tails). A body becomes a candidate when it connects at least
   ``min_support`` of the sampled facts; its *head coverage* is that share, and ``support`` estimates how many
   facts of ``r`` it connects (head coverage times the relation's facts).
2. **Confidence** (standard confidence): among the pairs ``(x, y)``, ``x != y``, the body connects from up to
   ``confidence_sample`` heads ``x`` (sparse row products), the share for which ``r(x, y)`` is known.

Rules below ``min_confidence`` are dropped; the best ``max_rules_per_relation`` by confidence are kept. Mining is
deterministic for a given ``seed``; :func:`rules_of` caches the rule set per fact table ("refreshed per bundle").
A bundle written by the pipeline carries its rules (``BUNDLE/rules.json``, mined when the bundle is written,
:mod:`evergraph.kg.knowledge.bundle_trust`); :func:`bundle_rules` reads them, and mines them on first use for a
bundle without the file.
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from evergraph.kg.engine.atomic import write_json
from evergraph.kg.errors import BundleError

if TYPE_CHECKING:
    from evergraph.kg.store.bundle import Bundle
    from evergraph.kg.store.facts import FactTable

logger = logging.getLogger(__name__)

__all__ = ["RULES_FILE", "Rule", "RuleConfig", "RuleSet", "bundle_rules", "mine_rules", "rules_of"]

RULES_FILE = "rules.json"
"""A bundle's mined rules (:meth:`RuleSet.save`), listed in its manifest."""
RULES_FORMAT = 1


class RuleConfig(BaseModel):
    """How rules are mined (defaults sized for graphs up to FB15k-237)."""

    model_config = ConfigDict(extra="forbid")

    max_length: int = Field(3, ge=1, le=3, description="longest body path")
    samples_per_relation: int = Field(200, gt=0, description="facts per relation whose paths propose bodies")
    min_support: int = Field(2, ge=1, description="sampled facts a body must connect to be a candidate")
    max_candidates: int = Field(100, gt=0, description="candidates per relation whose confidence is measured")
    confidence_sample: int = Field(100, gt=0, description="body heads x sampled to measure a rule's confidence")
    min_confidence: float = Field(0.05, ge=0, le=1, description="weaker rules are dropped")
    max_rules_per_relation: int = Field(20, gt=0, description="best rules kept per relation")
    max_middle_degree: int = Field(
        2000, gt=0, description="length-3 paths do not pass through a hub with more facts than this"
    )
    seed: int = Field(0, description="sampling seed")


@dataclass(frozen=True)
class Rule:
    """``body => relation`` (``relation`` a base id, ``body`` model relation ids from x to y)."""

    relation: int
    body: tuple[int, ...]
    confidence: float
    support: float
    head_coverage: float


@dataclass
class RuleSet:
    """Mined rules by base relation, best first, and what mining cost."""

    rules: dict[int, list[Rule]] = field(default_factory=dict)
    seconds: float = 0.0

    def of(self, relation: int) -> list[Rule]:
        return self.rules.get(relation, [])

    def __len__(self) -> int:
        return sum(len(v) for v in self.rules.values())

    def to_dict(self) -> dict[str, Any]:
        rules = [asdict(rule) for relation in sorted(self.rules) for rule in self.rules[relation]]
        return {"format": RULES_FORMAT, "seconds": round(self.seconds, 3), "rules": rules}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuleSet:
        if data.get("format") != RULES_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, not {RULES_FORMAT}")
        found = cls(seconds=float(data.get("seconds", 0.0)))
        for item in data["rules"]:
            rule = Rule(**{**item, "body": tuple(int(step) for step in item["body"])})
            found.rules.setdefault(int(rule.relation), []).append(rule)
        return found

    def save(self, path: Path | str) -> None:
        write_json(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: Path | str) -> RuleSet:
        """The rules saved at ``path``; a :class:`BundleError` naming the file when it cannot be read."""
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise BundleError(f"{path} holds no rules ({error}); write the bundle again") from None


class Adjacency:
    """One sparse ``[N, N]`` CSR matrix per model relation, and the doubled edge list, of a fact table."""

    def __init__(self, facts: FactTable) -> None:
        rows = facts.facts[:, :3].numpy()
        n = facts.num_entities
        self.num_entities = n
        src = np.concatenate([rows[:, 0], rows[:, 2]])
        rel = np.concatenate([2 * rows[:, 1], 2 * rows[:, 1] + 1])
        dst = np.concatenate([rows[:, 2], rows[:, 0]])
        self.src, self.rel, self.dst = src, rel, dst
        self.src64 = src.astype(np.int64)
        self.src_order = np.argsort(self.src64, kind="stable")  # every relation's joins on src share it
        self.degree = np.bincount(src, minlength=n)
        self.matrices: dict[int, sp.csr_matrix] = {}
        order = np.argsort(rel, kind="stable")
        bounds = np.searchsorted(rel[order], np.arange(2 * facts.num_relations + 1))
        for r in range(2 * facts.num_relations):
            pick = order[bounds[r] : bounds[r + 1]]
            if len(pick):
                data = np.ones(len(pick), dtype=np.float32)
                matrix = sp.csr_matrix((data, (src[pick], dst[pick])), shape=(n, n))
                matrix.data[:] = 1.0  # duplicates summed: back to 0/1
                self.matrices[r] = matrix

    def follow(self, rows: sp.csr_matrix, relation: int) -> sp.csr_matrix:
        """``rows @ A_relation`` as 0/1 (the entities reached from each row's set)."""
        matrix = self.matrices.get(relation)
        if matrix is None:
            return sp.csr_matrix(rows.shape, dtype=np.float32)
        out = (rows @ matrix).tocsr()
        out.data[:] = 1.0
        return out


def _join(left: np.ndarray, right: np.ndarray, *, order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(i, j)`` with ``left[i] == right[j]`` (an equi-join of two int64 key arrays); ``order``
    (default: computed) is ``right``'s stable argsort when the caller keeps it."""
    if order is None:
        order = np.argsort(right, kind="stable")
    sorted_right = right[order]
    lo = np.searchsorted(sorted_right, left, side="left")
    hi = np.searchsorted(sorted_right, left, side="right")
    counts = hi - lo
    li = np.repeat(np.arange(len(left)), counts)
    starts = np.repeat(lo, counts)
    offsets = np.arange(len(li)) - np.repeat(np.cumsum(counts) - counts, counts)
    return li, order[starts + offsets]


def _candidate_bodies(
    adj: Adjacency, heads: np.ndarray, tails: np.ndarray, relation: int, config: RuleConfig
) -> dict[tuple[int, ...], int]:
    """Body -> how many samples it connects (paths from ``heads[i]`` to ``tails[i]``, not the fact itself)."""
    n = adj.num_entities
    found: dict[tuple[int, ...], int] = {}
    width = max(int(adj.rel.max()) + 1 if len(adj.rel) else 1, 1)
    samples = len(heads)

    def count(steps: list[np.ndarray], which: np.ndarray) -> None:
        """Add, per body (the relations of ``steps``), the number of distinct samples ``which`` it connects."""
        if not len(which):
            return
        code = np.zeros(len(which), dtype=np.int64)
        for step in steps:
            code = code * width + step.astype(np.int64)
        codes = np.unique(code * samples + which.astype(np.int64)) // samples
        bodies, hits = np.unique(codes, return_counts=True)
        for body, hit in zip(bodies.tolist(), hits.tolist(), strict=True):
            parts = []
            for _ in steps:
                body, part = divmod(body, width)
                parts.append(part)
            key = tuple(reversed(parts))
            found[key] = found.get(key, 0) + hit

    index = np.arange(len(heads))
    # out-edges of the heads: (i, r1, a)
    li, ei = _join(heads.astype(np.int64), adj.src64, order=adj.src_order)
    i1, r1, a = index[li], adj.rel[ei], adj.dst[ei]
    # length 1: a == t, not the fact itself
    one = (a == tails[i1]) & (r1 != 2 * relation)
    count([r1[one]], i1[one])
    if config.max_length < 2:
        return found
    middle = (a != tails[i1]) & (a != heads[i1])
    i1, r1, a = i1[middle], r1[middle], a[middle]
    # in-edges of the tails: (i, b, r_last) with b -r_last-> t
    lj, ej = _join(tails.astype(np.int64), adj.src64, order=adj.src_order)
    i3, b, r3 = index[lj], adj.dst[ej], adj.rel[ej] ^ 1
    keep = (b != heads[i3]) & (b != tails[i3])
    i3, b, r3 = i3[keep], b[keep], r3[keep]
    # length 2: a == b
    x, y = _join(i1.astype(np.int64) * n + a, i3.astype(np.int64) * n + b)
    count([r1[x], r3[y]], i1[x])
    if config.max_length < 3:
        return found
    # length 3: a -r2-> b' with b' an in-neighbour b of the same sample's tail, a != b'
    small = adj.degree[a] <= config.max_middle_degree
    i1, r1, a = i1[small], r1[small], a[small]
    wanted = np.unique(b)
    edge = np.isin(adj.dst, wanted)
    e_src, e_rel, e_dst = adj.src[edge], adj.rel[edge], adj.dst[edge]
    x, e = _join(a.astype(np.int64), e_src.astype(np.int64))
    i2, p1, a2, p2, b2 = i1[x], r1[x], a[x], e_rel[e], e_dst[e]
    ok = b2 != a2
    i2, p1, p2, b2 = i2[ok], p1[ok], p2[ok], b2[ok]
    x, y = _join(i2.astype(np.int64) * n + b2, i3.astype(np.int64) * n + b)
    count([p1[x], p2[x], r3[y]], i2[x])
    return found


def _confidence(
    adj: Adjacency,
    body: tuple[int, ...],
    relation: int,
    rng: np.random.Generator,
    sample: int,
    cache: dict[int, tuple[np.ndarray, sp.csr_matrix, np.ndarray]],
) -> float:
    """Standard confidence of ``body => relation`` on up to ``sample`` heads of ``body[0]``; ``cache`` keeps, per
    first step, the sampled heads with their first-step rows and the codes of their target pairs (one relation's
    candidates share them)."""
    target = adj.matrices.get(2 * relation)
    if body[0] not in cache:
        first = adj.matrices.get(body[0])
        if first is None or target is None:
            return 0.0
        heads = np.flatnonzero(np.diff(first.indptr) > 0)
        if len(heads) > sample:
            heads = np.sort(rng.choice(heads, size=sample, replace=False))
        cache[body[0]] = (heads, first[heads], _pair_codes(target[heads], adj.num_entities))
    heads, rows, target_codes = cache[body[0]]
    for step in body[1:]:
        rows = adj.follow(rows, step)
    # pairs (x, y) with x != y as codes row * n + column, counted with numpy on the CSR arrays (scipy's
    # indexing and elementwise products cost more in checks than in work on these small row blocks)
    n = adj.num_entities
    reached = _pair_codes(rows, n)
    diagonal = np.arange(len(heads), dtype=np.int64) * n + heads
    reached = reached[~np.isin(reached, diagonal, assume_unique=True)]
    if not len(reached):
        return 0.0
    hits = np.isin(reached, target_codes, assume_unique=True).sum()
    return float(hits) / len(reached)


def _pair_codes(rows: sp.csr_matrix, n: int) -> np.ndarray:
    """The stored nonzero cells of ``rows`` as codes ``row * n + column`` (unique: a product or row selection of
    canonical CSR matrices stores each cell once)."""
    rows = rows.tocsr()
    nonzero = rows.data != 0
    row_of = np.repeat(np.arange(rows.shape[0], dtype=np.int64), np.diff(rows.indptr))
    return row_of[nonzero] * n + rows.indices[nonzero].astype(np.int64)


def mine_rules(facts: FactTable, *, config: RuleConfig | None = None) -> RuleSet:
    """Mine the rules of every relation of ``facts`` (module docstring); ``config`` defaults to ``RuleConfig()``."""
    config = config or RuleConfig()
    started = time.perf_counter()
    adj = Adjacency(facts)
    rng = np.random.default_rng(config.seed)
    known = facts.facts[:, :3].numpy()
    result = RuleSet()
    for relation in np.unique(known[:, 1]).tolist():
        rows = known[known[:, 1] == relation]
        if len(rows) > config.samples_per_relation:
            rows = rows[rng.choice(len(rows), size=config.samples_per_relation, replace=False)]
        bodies = _candidate_bodies(adj, rows[:, 0], rows[:, 2], relation, config)
        candidates = sorted(
            ((body, hit) for body, hit in bodies.items() if hit >= config.min_support),
            key=lambda item: (-item[1], item[0]),
        )[: config.max_candidates]
        total = int((known[:, 1] == relation).sum())
        rules = []
        cache: dict[int, tuple[np.ndarray, sp.csr_matrix, np.ndarray]] = {}
        for body, hit in candidates:
            confidence = _confidence(adj, body, relation, rng, config.confidence_sample, cache)
            if confidence >= config.min_confidence:
                coverage = hit / len(rows)
                rules.append(Rule(relation, body, round(confidence, 4), round(coverage * total, 1), round(coverage, 4)))
        rules.sort(key=lambda rule: (-rule.confidence, -rule.support, rule.body))
        if rules:
            result.rules[int(relation)] = rules[: config.max_rules_per_relation]
    result.seconds = time.perf_counter() - started
    logger.info("mined %d rules over %d facts in %.1fs", len(result), len(known), result.seconds)
    return result


_CACHE: weakref.WeakKeyDictionary[FactTable, RuleSet] = weakref.WeakKeyDictionary()


def rules_of(facts: FactTable, *, config: RuleConfig | None = None) -> RuleSet:
    """The rules of ``facts`` (mined once per fact table with the default config, then cached)."""
    if config is not None:
        return mine_rules(facts, config=config)
    found = _CACHE.get(facts)
    if found is None:
        found = mine_rules(facts)
        _CACHE[facts] = found
    return found


def bundle_rules(bundle: Bundle) -> RuleSet:
    """The rules of ``bundle``: those it carries (``rules.json``), else mined from its known facts on first use
    (a bundle written before rules were mined at write time); cached per bundle like :func:`rules_of`."""
    found = _CACHE.get(bundle.facts)
    if found is None:
        path = bundle.path / RULES_FILE
        found = RuleSet.load(path) if path.is_file() else mine_rules(bundle.facts)
        _CACHE[bundle.facts] = found
    return found
