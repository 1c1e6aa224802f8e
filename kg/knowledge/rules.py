"""Horn rules mined from the known facts: ``body(x, y) => r(x, y)`` with a body path of length 1 to 3.

A body is a sequence of *model* relations (``2r`` forward, ``2r + 1`` inverse; :mod:`evergraph.kg.store.facts`)
walked from ``x`` to ``y`` through distinct intermediate entities, e.g. ``born_in(x, a) & located_in(a, y) =>
citizen_of(x, y)`` is the body ``(2 * born_in, 2 * located_in)`` of ``citizen_of``. Mining, in the manner of AMIE
(Galárraga et al. 2013) but sampled so it stays fast on FB15k-237-sized graphs:

1. **Candidates**: for up to ``samples_per_relation`` facts ``r(h, t)`` of each relation, every path of length
   at most ``max_length`` from ``h`` to ``t`` that does not use the fact itself (a vectorised join of out-edges
   of the heads with in-edges of the tails: the tails' side in a ``(sample, entity)`` lookup table, the heads'
   side streamed through it). A body becomes a candidate when it connects at least ``min_support`` of the
   sampled facts; its *head coverage* is that share, and ``support`` estimates how many facts of ``r`` it
   connects (head coverage times the relation's facts).
2. **Confidence** (standard confidence): among the pairs ``(x, y)``, ``x != y``, the body connects from up to
   ``confidence_sample`` heads ``x``, the share for which ``r(x, y)`` is known. A relation's candidates are
   measured together: every body prefix is followed once, all children of a block of prefixes in one sparse
   product, and the reached pairs are counted with one elementwise product.

Rules below ``min_confidence`` are dropped; the best ``max_rules_per_relation`` by confidence are kept. Mining is
deterministic for a given ``seed`` (each relation draws from its own stream, so relations are mined side by side
in threads with the same result); :func:`rules_of` caches the rule set per fact table ("refreshed per bundle").
A bundle written by the pipeline carries its rules (``BUNDLE/rules.json``, mined when the bundle is written,
:mod:`evergraph.kg.knowledge.bundle_trust`); :func:`bundle_rules` reads them, and mines them on first use for a
bundle without the file.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import cached_property
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


_TABLE_CELLS = 1 << 24
"""Cells ``(sample, entity)`` of the lookup table of the candidate joins (64 MiB of int32 at most; its cell
numbers are int32): samples are joined in batches of ``_TABLE_CELLS // num_entities``."""
_BLOCK = 1 << 22
"""Path steps (candidate joins) or product work (confidence) materialised at once, to bound memory."""
_DENSE_ROWS = 1 << 25
"""Up to this many (model relation, entity) cells, ``Adjacency.row_of`` is a direct table (int32: 128 MiB)."""


class Adjacency:
    """The doubled edge list of a fact table (``2r`` forward, ``2r + 1`` inverse) in two sorted layouts, built
    once per fact table: by source (``out_ptr``, a CSR over entities: the out-edges of ``e`` are positions
    ``out_ptr[e]:out_ptr[e + 1]`` of ``out_rel``/``out_dst``), and without duplicates by (relation, source,
    destination) (``edge_code``; ``stacked``, a CSR with one row per (relation, source) pair of ``row_keys``
    ``relation * N + source``). ``matrices`` (one ``[N, N]`` CSR matrix per model relation, what explanations
    use), ``row_class`` and the table of ``row_of`` (what mining uses) are built on first use."""

    def __init__(self, facts: FactTable) -> None:
        rows = facts.facts[:, :3].numpy().astype(np.int64)
        n = facts.num_entities
        self.num_entities = n
        self.num_model_relations = 2 * facts.num_relations
        src = np.concatenate([rows[:, 0], rows[:, 2]])
        rel = np.concatenate([2 * rows[:, 1], 2 * rows[:, 1] + 1])
        dst = np.concatenate([rows[:, 2], rows[:, 0]])
        self.degree = np.bincount(src, minlength=n)
        order = np.argsort(src, kind="stable")
        self.out_ptr = np.concatenate([[0], np.cumsum(self.degree)])
        # int32 copies (ids and table cells fit): the candidate joins stream through them
        self.out_src, self.out_rel, self.out_dst = (part[order].astype(np.int32) for part in (src, rel, dst))
        self.out_loop = self.out_src == self.out_dst
        self.edge_code = _distinct((rel * n + src) * n + dst)  # int64: up to 2 * relations * N^2 < 2^63
        keys = self.edge_code // n
        self.row_keys, starts = np.unique(keys, return_index=True)
        # one more row, empty: where (relation, source) pairs without facts go
        indptr = np.append(starts, [len(keys), len(keys)])
        self.stacked = sp.csr_matrix(
            (np.ones(len(keys), dtype=bool), self.edge_code % n, indptr), shape=(len(self.row_keys) + 1, n)
        )

    @cached_property
    def matrices(self) -> dict[int, sp.csr_matrix]:
        """One ``[N, N]`` 0/1 CSR matrix per model relation with facts (sorted indices)."""
        n = self.num_entities
        bounds = np.searchsorted(self.row_keys, np.arange(self.num_model_relations + 1) * n)
        found = {}
        for relation in range(self.num_model_relations):
            lo, hi = bounds[relation], bounds[relation + 1]
            if hi == lo:
                continue
            counts = np.zeros(n, dtype=np.int64)
            counts[self.row_keys[lo:hi] - relation * n] = np.diff(self.stacked.indptr[lo : hi + 1])
            indices = self.stacked.indices[self.stacked.indptr[lo] : self.stacked.indptr[hi]]
            indptr = np.concatenate([[0], np.cumsum(counts)])
            data = np.ones(len(indices), dtype=np.float32)
            found[relation] = sp.csr_matrix((data, indices, indptr), shape=(n, n))
        return found

    @cached_property
    def row_class(self) -> np.ndarray:
        """For each row of ``stacked``, the first row with the same entities (:func:`_row_classes`)."""
        return _row_classes(self.stacked)

    @cached_property
    def _row_table(self) -> np.ndarray | None:
        """``row_of`` as a direct table, when it is small enough (else binary searches)."""
        cells = self.num_model_relations * self.num_entities
        if cells > _DENSE_ROWS:
            return None
        table = np.full(cells, len(self.row_keys), dtype=np.int32)
        table[self.row_keys] = np.arange(len(self.row_keys))
        return table

    def prepare(self) -> None:
        """Build what mining reads lazily (``row_class``, the ``row_of`` table, ``matrices``) now, so that threads
        mining relations side by side find them built."""
        _ = self.row_class, self._row_table, self.matrices

    def row_of(self, keys: np.ndarray) -> np.ndarray:
        """The rows of ``stacked`` of ``keys`` ``relation * N + source`` (its last, empty row where ``source``
        has no fact of ``relation``)."""
        if self._row_table is not None:
            return self._row_table[keys]
        found = np.searchsorted(self.row_keys, keys)
        missing = found == len(self.row_keys)
        missing[~missing] = self.row_keys[found[~missing]] != keys[~missing]
        found[missing] = len(self.row_keys)
        return found

    def rows_of(self, relation: int) -> tuple[int, int]:
        """The rows ``lo:hi`` of ``stacked`` (and ``row_keys``) of ``relation``'s sources."""
        n = self.num_entities
        lo, hi = np.searchsorted(self.row_keys, [relation * n, (relation + 1) * n])
        return int(lo), int(hi)


def _distinct(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)`` by a sort (numpy 2's hashed ``unique`` of int64 codes measured up to 60x slower)."""
    values = np.sort(values)
    return values[np.concatenate([[True], values[1:] != values[:-1]])] if len(values) else values


def _row_classes(matrix: sp.csr_matrix) -> np.ndarray:
    """For each row of ``matrix`` (sorted indices), the first row with the same entries (equal rows found by a
    fingerprint and then compared entry by entry; a row whose fingerprint collides stays its own class)."""
    lengths = np.diff(matrix.indptr)
    owner = np.repeat(np.arange(matrix.shape[0]), lengths)
    index = matrix.indices.astype(np.int64)
    rows = matrix.shape[0]
    total = np.bincount(owner, weights=index, minlength=rows)
    mixed = np.bincount(owner, weights=(index * 2654435761) % 4294967291, minlength=rows)
    order = np.lexsort((mixed, total, lengths))
    new = np.ones(rows, dtype=bool)
    new[1:] = (np.diff(lengths[order]) != 0) | (np.diff(total[order]) != 0) | (np.diff(mixed[order]) != 0)
    first = order[np.flatnonzero(new)[np.cumsum(new) - 1]]
    found = np.empty(rows, dtype=np.int64)
    found[order] = first
    check = np.flatnonzero(found != np.arange(rows))
    which, position = _ranges(matrix.indptr[check], lengths[check])
    other = position - matrix.indptr[check][which] + matrix.indptr[found[check]][which]
    differs = np.bincount(which, weights=matrix.indices[position] != matrix.indices[other], minlength=len(check))
    found[check[differs > 0]] = check[differs > 0]
    return found


def _positions(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Every position of the ranges ``starts[k] : starts[k] + counts[k]``, in order (int32 when it fits: these
    are the largest arrays of mining)."""
    total = int(counts.sum())
    small = total < 2**31 and (not len(starts) or int(starts.max()) + int(counts.max()) < 2**31)
    dtype = np.int32 if small else np.int64
    position = np.repeat((starts - (np.cumsum(counts) - counts)).astype(dtype), counts)
    position += np.arange(total, dtype=dtype)
    return position


def _ranges(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_positions` with the range ``k`` of each."""
    position = _positions(starts, counts)
    return np.repeat(np.arange(len(starts), dtype=position.dtype), counts), position


def _join(left: np.ndarray, right: np.ndarray, *, order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(i, j)`` with ``left[i] == right[j]`` (an equi-join of two int64 key arrays); ``order``
    (default: computed) is ``right``'s stable argsort when the caller keeps it."""
    if order is None:
        order = np.argsort(right, kind="stable")
    sorted_right = right[order]
    lo = np.searchsorted(sorted_right, left, side="left")
    hi = np.searchsorted(sorted_right, left, side="right")
    li, position = _ranges(lo, hi - lo)
    return li, order[position]


def _blocks(counts: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Consecutive slices of ``counts`` whose sums stay near ``limit`` (a slice holds one item at least)."""
    ends = np.searchsorted(np.cumsum(counts), np.arange(1, 1 + (int(counts.sum()) // limit)) * limit, side="right")
    bounds = sorted({0, len(counts), *(int(end) for end in ends if 0 < end < len(counts))})
    return list(itertools.pairwise(bounds))


class _Groups:
    """Distinct ``(key, value)`` pairs grouped by key: the sorted distinct ``keys``, and each one's ``start`` and
    ``count`` in ``values`` (values below ``width``; one sort of the pairs' codes, no argsort)."""

    def __init__(self, keys: np.ndarray, values: np.ndarray, *, width: int) -> None:
        code = _distinct(keys.astype(np.int64) * width + values)
        keys, self.values = code // width, code % width
        self.start = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]])) if len(keys) else code[:0]
        self.count = np.diff(np.append(self.start, len(keys)))
        self.keys = keys[self.start]


def _candidate_bodies(
    adj: Adjacency, heads: np.ndarray, tails: np.ndarray, relation: int, config: RuleConfig, table: np.ndarray
) -> dict[tuple[int, ...], int]:
    """Body -> how many samples it connects (paths from ``heads[i]`` to ``tails[i]``, not the fact itself).
    ``table`` is a scratch ``int32`` array of ``-1`` (left so)."""
    n = max(adj.num_entities, 1)
    samples = len(heads)
    per = max(1, min(samples, len(table) // n))
    pairs = [
        _sample_bodies(adj, heads[lo : lo + per], tails[lo : lo + per], relation, config, table, first=lo, of=samples)
        for lo in range(0, samples, per)
    ]
    # pairs: (body code, sample) of every distinct body of every sample; a body's hits are its distinct samples
    codes, hits = np.unique(_distinct(np.concatenate(pairs)) // samples, return_counts=True)
    width = adj.num_model_relations + 1
    found: dict[tuple[int, ...], int] = {}
    for code, hit in zip(codes.tolist(), hits.tolist(), strict=True):
        parts = []
        while code:
            code, part = divmod(code, width)
            parts.append(part - 1)
        found[tuple(reversed(parts))] = hit
    return found


def _sample_bodies(
    adj: Adjacency,
    heads: np.ndarray,
    tails: np.ndarray,
    relation: int,
    config: RuleConfig,
    table: np.ndarray,
    *,
    first: int,
    of: int,
) -> np.ndarray:
    """Distinct ``body_code * of + first + i`` of the bodies of paths from ``heads[i]`` to ``tails[i]`` (a batch
    of samples that starts at sample ``first`` of ``of``); a body ``(s1, .., sk)`` is coded ``(s1 + 1) *
    W^(k-1) + .. + (sk + 1)``, ``W`` the model relations plus one."""
    n = adj.num_entities
    width = adj.num_model_relations + 1
    found = [np.empty(0, dtype=np.int64)]

    def add(code: np.ndarray, sample: np.ndarray) -> None:
        found.append(_distinct(code.astype(np.int64) * of + (sample + first)))

    # out-edges of the heads: (i, r1, a)
    i1, position = _ranges(adj.out_ptr[heads], adj.degree[heads])
    r1, a = adj.out_rel[position], adj.out_dst[position]
    # length 1: a == t, not the fact itself
    one = (a == tails[i1]) & (r1 != 2 * relation)
    add(r1[one] + 1, i1[one])
    if config.max_length < 2:
        return np.concatenate(found)
    middle = (a != tails[i1]) & (a != heads[i1])
    i1, r1, a = i1[middle], r1[middle], a[middle]
    # in-edges of the tails, (i, b, r_last) with b -r_last-> t, grouped by (i, b): table[i * n + b] is the group
    i3, position = _ranges(adj.out_ptr[tails], adj.degree[tails])
    b, r3 = adj.out_dst[position], adj.out_rel[position] ^ 1
    keep = (b != heads[i3]) & (b != tails[i3])
    last = _Groups(i3[keep] * n + b[keep], r3[keep], width=width)
    table[last.keys] = np.arange(len(last.keys), dtype=table.dtype)
    try:
        # length 2: a is an in-neighbour b of the same sample's tail
        group = table[i1 * n + a]
        hit = group >= 0
        x, y = _ranges(last.start[group[hit]], last.count[group[hit]])
        add((r1[hit][x] + 1) * width + last.values[y] + 1, i1[hit][x])
        if config.max_length >= 3:
            small = adj.degree[a] <= config.max_middle_degree
            _length_three(adj, i1[small], r1[small], a[small], last, table, add)
    finally:
        table[last.keys] = -1
    return np.concatenate(found)


def _length_three(
    adj: Adjacency, i1: np.ndarray, r1: np.ndarray, a: np.ndarray, last: _Groups, table: np.ndarray, add: Any
) -> None:
    """Length 3: ``a -r2-> b`` with ``(i, a)`` a head-side step and ``(i, b)`` a group of ``last``, ``a != b``."""
    n = adj.num_entities
    width = adj.num_model_relations + 1
    first = _Groups(i1 * n + a, r1, width=width)
    # the middle edges that can end a path: into some sample's tail-side b, not self-loops
    wanted = np.zeros(n, dtype=bool)
    wanted[last.keys % n] = True
    edge = np.flatnonzero(wanted[adj.out_dst] & ~adj.out_loop)
    ptr = np.concatenate([[0], np.cumsum(np.bincount(adj.out_src[edge], minlength=n))])
    middle_rel, middle_dst = adj.out_rel[edge], adj.out_dst[edge]
    sample, entity = first.keys // n, first.keys % n
    base = (sample * n).astype(np.int32)  # the table's cell of (i, 0)
    counts = ptr[entity + 1] - ptr[entity]
    for lo, hi in _blocks(counts, _BLOCK):
        # (i, a) -r2-> b for every middle edge of a, looked up as (i, b); owners found for the hits only
        position = _positions(ptr[entity[lo:hi]], counts[lo:hi])
        group = table[np.repeat(base[lo:hi], counts[lo:hi]) + middle_dst[position]]
        hit = np.flatnonzero(group >= 0)
        owner = np.searchsorted(np.cumsum(counts[lo:hi]), hit, side="right") + lo
        r2, group = middle_rel[position[hit]], group[hit]
        # every first step of (i, a) times every last step of (i, b)
        x, px = _ranges(first.start[owner], first.count[owner])
        steps, group, owner = (first.values[px] + 1) * width + r2[x] + 1, group[x], sample[owner[x]]
        y, py = _ranges(last.start[group], last.count[group])
        add(steps[y] * width + last.values[py] + 1, owner[y])


def _twos(columns: np.ndarray, width: int) -> sp.csr_matrix:
    """A ``[len(columns), width]`` int8 matrix with a 2 in row ``i`` at ``columns[i]`` (the diagonal ``y == x``)."""
    data = np.full(len(columns), 2, dtype=np.int8)
    return sp.csr_matrix((data, columns, np.arange(len(columns) + 1)), shape=(len(columns), width))


@dataclass
class _Level:
    """Rows ``(node, x)`` of body prefixes ``nodes`` (``count[k]`` heads ``x`` of node ``k``, ``row_head``): the
    entities each reaches from ``x``, stored once per distinct row (``matrix``: ``distinct[k]`` rows of node
    ``k``; ``rep`` maps each row ``(node, x)`` to its row of ``matrix``)."""

    matrix: sp.csr_matrix
    nodes: list[tuple[int, ...]]
    row_head: np.ndarray
    count: np.ndarray
    rep: np.ndarray
    distinct: np.ndarray

    def starts(self) -> tuple[np.ndarray, np.ndarray]:
        """Each node's first row ``(node, x)`` and first row of ``matrix``."""
        return np.cumsum(self.count) - self.count, np.cumsum(self.distinct) - self.distinct


def _confidences(
    adj: Adjacency, bodies: list[tuple[int, ...]], relation: int, rng: np.random.Generator, sample: int
) -> list[float]:
    """Standard confidence of each ``body => relation``: among the pairs ``(x, y)``, ``x != y``, the body
    connects from up to ``sample`` heads ``x`` of its first step (drawn in the order of ``bodies``; bodies with
    the same first step share them), the share for which ``relation(x, y)`` is known. Every prefix of the bodies
    is followed once, and the children of a block of prefixes in one sparse product: rows ``(prefix, x)`` of
    the entities the prefix reaches from ``x``, mapped onto the rows ``(step, entity)`` of ``adj.stacked``.
    Heads whose first-step rows are equal (e.g. every head of a relation with one hub tail) share one row, and
    so do all their rows below it (:class:`_Level`)."""
    n = adj.num_entities
    result = [0.0] * len(bodies)
    lo, hi = adj.rows_of(2 * relation)
    if hi == lo:
        return result
    heads_of: dict[int, np.ndarray] = {}
    for body in bodies:
        step = body[0]
        if step in heads_of:
            continue
        first, end = adj.rows_of(step)
        if first == end:
            continue
        heads = adj.row_keys[first:end] - step * n
        if len(heads) > sample:
            heads = np.sort(rng.choice(heads, size=sample, replace=False))
        heads_of[step] = heads
    wanted = {body: index for index, body in enumerate(bodies) if body[0] in heads_of}
    if not wanted:
        return result
    children: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
    for body in wanted:
        for length in range(2, len(body) + 1):
            siblings = children.setdefault(body[: length - 1], [])
            if body[:length] not in siblings:
                siblings.append(body[:length])

    target = adj.matrices[2 * relation].astype(np.int8)  # int8 marks: the 0/1 rows multiplied stay one byte

    def evaluate(level: _Level) -> None:
        """The confidence of the bodies among ``level.nodes``. Per row ``(node, x)``: the reached ``y`` are the
        entries of its distinct row ``d``, less ``y == x``; the hits are its ``y`` with ``relation(x, y)``, ``y !=
        x``. Both by asking whether ``(d, y)`` is an entry for ``y = x`` and each tail ``y`` of ``x``: one
        elementwise product of the distinct rows with all questions asked of them."""
        flag = np.array([node in wanted for node in level.nodes])
        if not flag.any():
            return
        node_of_row = np.repeat(np.arange(len(level.nodes)), level.count)
        rows = np.flatnonzero(flag[node_of_row])
        heads, distinct = level.row_head[rows], level.rep[rows]
        tails = target[heads]
        owner = np.repeat(np.arange(len(rows)), np.diff(tails.indptr))
        other = tails.indices != heads[owner]  # a tail y != x of x
        asker = np.concatenate([np.arange(len(rows)), owner[other]])
        asked = np.concatenate([heads, tails.indices[other]])
        hit = np.arange(len(asker)) >= len(rows)
        shape = level.matrix.shape
        questions = sp.csr_matrix((np.ones(len(asker), dtype=bool), (distinct[asker], asked)), shape=shape)
        answers = level.matrix.multiply(questions).tocoo()
        known = np.sort(answers.row.astype(np.int64) * n + answers.col)
        code = distinct[asker].astype(np.int64) * n + asked
        found = np.zeros(len(code), dtype=bool)
        if len(known):
            found = known[np.minimum(np.searchsorted(known, code), len(known) - 1)] == code
        node = node_of_row[rows]
        reached = np.bincount(node, weights=np.diff(level.matrix.indptr)[distinct], minlength=len(level.nodes))
        reached -= np.bincount(node[asker[found & ~hit]], minlength=len(level.nodes))
        hits = np.bincount(node[asker[found & hit]], minlength=len(level.nodes))
        for k in np.flatnonzero(flag).tolist():
            if reached[k] > 0:
                result[wanted[level.nodes[k]]] = float(hits[k]) / int(reached[k])

    def visit(level: _Level) -> None:
        evaluate(level)
        pairs = [(k, child) for k, node in enumerate(level.nodes) for child in children.get(node, [])]
        if not pairs:
            return
        parent = np.array([k for k, _ in pairs])
        step = np.array([child[-1] for _, child in pairs], dtype=np.int64)
        start, distinct = level.starts()
        weight = (level.matrix.indptr[distinct + level.distinct] - level.matrix.indptr[distinct])[parent]
        for first, last in _blocks(weight, _BLOCK):
            block = parent[first:last]
            # the children's distinct rows: their parents' distinct rows followed by the child's step
            which, parent_row = _ranges(distinct[block], level.distinct[block])
            rows = level.matrix[parent_row]
            key = np.repeat(step[first:last][which], np.diff(rows.indptr)) * n + rows.indices
            shape = (len(parent_row), adj.stacked.shape[0])
            mapped = sp.csr_matrix((rows.data, adj.row_of(key), rows.indptr), shape=shape)
            # the children's rows (node, x): their parents', pointing at the same place in the children's block
            child_distinct = np.cumsum(level.distinct[block]) - level.distinct[block]
            owner, row = _ranges(start[block], level.count[block])
            rep = level.rep[row] - distinct[block][owner] + child_distinct[owner]
            nodes = [child for _, child in pairs[first:last]]
            count, counts = level.count[block], level.distinct[block]
            visit(_Level(mapped @ adj.stacked, nodes, level.row_head[row], count, rep, counts))

    roots = list(dict.fromkeys(body[:1] for body in wanted))
    heads = [heads_of[root[0]] for root in roots]
    # a root's rows are rows of stacked; heads whose rows are equal share one (and so do all their descendants')
    classes = [adj.row_class[adj.row_of(root[0] * n + h)] for root, h in zip(roots, heads, strict=True)]
    kinds = [np.unique(found, return_inverse=True) for found in classes]
    distinct = np.array([len(kind) for kind, _ in kinds])
    offsets = np.cumsum(distinct) - distinct
    rep = np.concatenate([inverse.ravel() + offset for (_, inverse), offset in zip(kinds, offsets, strict=True)])
    matrix = adj.stacked[np.concatenate([kind for kind, _ in kinds])]
    visit(_Level(matrix, roots, np.concatenate(heads), np.array([len(h) for h in heads]), rep, distinct))
    return result


def mine_rules(facts: FactTable, *, config: RuleConfig | None = None, workers: int | None = None) -> RuleSet:
    """Mine the rules of every relation of ``facts`` (module docstring); ``config`` defaults to ``RuleConfig()``.

    Relations are mined independently, each with its own random stream (seeded by ``config.seed`` and the
    relation), so the rules do not depend on ``workers``: how many relations are mined at once in threads
    (default None: the CPU cores this process may use, at most 4; the sparse products and sorts release the GIL,
    1.5x faster on 2 cores). Each thread keeps its own lookup table of at most 64 MiB."""
    config = config or RuleConfig()
    started = time.perf_counter()
    adj = Adjacency(facts)
    adj.prepare()  # the shared lazy parts, built once before the threads read them
    known = facts.facts[:, :3].numpy()
    per = min(config.samples_per_relation, _TABLE_CELLS // max(adj.num_entities, 1))
    order = np.argsort(known[:, 1], kind="stable")
    relations, starts, totals = np.unique(known[order, 1], return_index=True, return_counts=True)
    tables = threading.local()

    def mine(relation: int, start: int, total: int) -> list[Rule]:
        table = getattr(tables, "table", None)
        if table is None:
            table = tables.table = np.full(max(per, 1) * adj.num_entities, -1, dtype=np.int32)
        rng = np.random.default_rng([config.seed, relation])
        rows = known[np.sort(order[start : start + total])]
        if len(rows) > config.samples_per_relation:
            rows = rows[rng.choice(len(rows), size=config.samples_per_relation, replace=False)]
        bodies = _candidate_bodies(adj, rows[:, 0], rows[:, 2], relation, config, table)
        candidates = sorted(
            ((body, hit) for body, hit in bodies.items() if hit >= config.min_support),
            key=lambda item: (-item[1], item[0]),
        )[: config.max_candidates]
        confidences = _confidences(adj, [body for body, _ in candidates], relation, rng, config.confidence_sample)
        rules = []
        for (body, hit), confidence in zip(candidates, confidences, strict=True):
            if confidence >= config.min_confidence:
                coverage = hit / len(rows)
                rules.append(Rule(relation, body, round(confidence, 4), round(coverage * total, 1), round(coverage, 4)))
        rules.sort(key=lambda rule: (-rule.confidence, -rule.support, rule.body))
        return rules[: config.max_rules_per_relation]

    jobs = sorted(zip(relations.tolist(), starts.tolist(), totals.tolist(), strict=True), key=lambda job: -job[2])
    workers = min(workers or _usable_cores(), 4, max(len(jobs), 1))
    if workers > 1:  # the largest relations first, so that no thread is left with one big relation at the end
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="evergraph-rules") as pool:
            mined = dict(zip((job[0] for job in jobs), pool.map(lambda job: mine(*job), jobs), strict=True))
    else:
        mined = {job[0]: mine(*job) for job in jobs}
    result = RuleSet()
    for relation in relations.tolist():
        if mined[relation]:
            result.rules[int(relation)] = mined[relation]
    result.seconds = time.perf_counter() - started
    logger.info(
        "mined %d rules over %d facts in %.1fs (%d thread(s))", len(result), len(known), result.seconds, workers
    )
    return result


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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
