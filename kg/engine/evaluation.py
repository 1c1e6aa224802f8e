"""Filtered link-prediction evaluation over a stream of snapshots.

Every triple ``(h, r, t)`` gives two queries, both answered as *tail queries* of the model: the tail query
``(h, 2r) -> t`` and the head query ``(t, 2r + 1) -> h`` (model relation ids interleave each base relation
``r`` with its inverse). A query is ranked against every candidate entity id ``0..num_candidates-1`` in the
*filtered* setting: every other known answer of the same query is removed before ranking, the answer stays.

Ties are ranked *realistically*: the mean of the optimistic rank (only strictly better candidates count) and
the pessimistic rank (candidates scoring equal count as better too), so a constant model gets the expected
rank of a random ordering rather than rank 1 or rank N.

NaN scores count as the worst possible score, below every number including ``-inf`` (NaN ties with NaN): a
candidate scoring NaN never outranks the answer, and an answer scoring NaN is ranked behind every candidate
with a number and tied with every other NaN candidate.

Two protocols (:data:`PROTOCOLS`) say which entities and which known facts apply when the test set of
snapshot ``j`` is evaluated after training on snapshot ``i >= j``; see :class:`EvalProtocol`. Under both, a fact
retracted by a snapshot ``<= i`` is dropped from every test set and from every filter (it is no longer known).

Ranking is *full* (every candidate entity) by default. With a :class:`CandidateSample` (the engine switches to it
above a size threshold, see :class:`evergraph.kg.engine.config.EvaluationConfig`) each query ranks its answer
against a fixed random sample of ``size`` candidate ids instead (the OGB-wikikg2 protocol): the sample is drawn by
a seeded hash of the query ``(entity, relation, answer)``, so it is the same whatever the blocks, the order or the
process; sampled ids that are known answers of the query, the answer itself or repeats are filtered out, so a rank
is at most ``size + 1``. Metrics computed this way are not comparable with full ranking: every result says which
ranking made it (``ranking``: ``"full"`` or ``"sampled-N"``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from evergraph.kg.engine.snapshot import Snapshot, retained
from evergraph.kg.errors import UnknownComponentError

logger = logging.getLogger(__name__)

ScoreFn = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
"""``score_fn(query_entities, query_relations, num_candidates) -> FloatTensor[b, num_candidates]``.

``query_entities``/``query_relations`` are ``LongTensor[b]`` (model relation ids ``2r`` or ``2r + 1``); the
result holds the score of every candidate entity id, higher is better. The evaluator overwrites the returned
tensor in place, so return a fresh tensor (the usual ``addmm``/``matmul`` result is), not a cached one.
"""

CandidateScoreFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``candidate_score_fn(query_entities, query_relations, candidates) -> FloatTensor[b, k]``: the score of
``candidates[i, j]`` (a ``LongTensor[b, k]`` of entity ids) for query ``i``; used by sampled ranking so that only
the sampled candidates are scored. Optional: without it, sampled ranking takes the columns it needs from
``score_fn`` (a few rows at a time, so memory stays bounded, but every candidate is scored).
"""

_SPLITS = ("test", "valid")

FULL_RANKING = "full"
"""The ``ranking`` label of results ranked against every candidate entity."""


@dataclass(frozen=True)
class CandidateSample:
    """Sampled ranking: each query's answer against ``size`` candidate ids drawn by a hash seeded with ``seed``."""

    size: int
    seed: int = 0

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"a candidate sample needs size >= 1, got {self.size}")

    @property
    def label(self) -> str:
        """``"sampled-<size>"``: the ranking named in every metrics table made with this sample."""
        return f"sampled-{self.size}"


def ranking_label(sample: CandidateSample | None) -> str:
    """``"full"`` without a sample, else the sample's label (``"sampled-N"``)."""
    return FULL_RANKING if sample is None else sample.label


# ---------------------------------------------------------------------------------------------------------
# Ranks and metrics
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ranks:
    """Filtered ranks, one per query: the ``n`` triples' tail queries first, then their ``n`` head queries.

    ``optimistic`` is ``1 + #(candidates scoring strictly better than the answer)``; ``pessimistic`` is
    ``1 + #(other candidates scoring better or equal)``. Both are ``float64`` tensors on the CPU.
    """

    optimistic: torch.Tensor
    pessimistic: torch.Tensor

    @property
    def realistic(self) -> torch.Tensor:
        """The mean of the optimistic and the pessimistic rank (the rank every metric uses)."""
        return (self.optimistic + self.pessimistic) / 2


@dataclass(frozen=True)
class RankingMetrics:
    """Mean reciprocal rank and hits@{1,3,10} over ``num_queries`` queries (all zero when there are none)."""

    mrr: float
    hits_at_1: float
    hits_at_3: float
    hits_at_10: float
    num_queries: int

    def to_dict(self) -> dict[str, float]:
        """The four metrics under the keys ``"mrr"``, ``"hits@1"``, ``"hits@3"`` and ``"hits@10"``."""
        return {
            "mrr": self.mrr,
            "hits@1": self.hits_at_1,
            "hits@3": self.hits_at_3,
            "hits@10": self.hits_at_10,
        }

    @classmethod
    def from_ranks(cls, realistic: torch.Tensor) -> RankingMetrics:
        """Metrics of the given (realistic) ranks: ``mrr = mean(1 / rank)``, ``hits@k = mean(rank <= k)``."""
        ranks = realistic.detach().reshape(-1).to(device="cpu", dtype=torch.float64)
        n = ranks.numel()
        if n == 0:
            return cls(mrr=0.0, hits_at_1=0.0, hits_at_3=0.0, hits_at_10=0.0, num_queries=0)
        return cls(
            mrr=ranks.reciprocal().mean().item(),
            hits_at_1=(ranks <= 1).double().mean().item(),
            hits_at_3=(ranks <= 3).double().mean().item(),
            hits_at_10=(ranks <= 10).double().mean().item(),
            num_queries=n,
        )

    @classmethod
    def combine(cls, parts: Sequence[RankingMetrics]) -> RankingMetrics:
        """Pool metric sets, weighting each by its ``num_queries`` (parts without queries add nothing)."""
        total = sum(p.num_queries for p in parts)
        if total == 0:
            return cls(mrr=0.0, hits_at_1=0.0, hits_at_3=0.0, hits_at_10=0.0, num_queries=0)

        def pooled(attr: str) -> float:
            return sum(getattr(p, attr) * p.num_queries for p in parts) / total

        return cls(
            mrr=pooled("mrr"),
            hits_at_1=pooled("hits_at_1"),
            hits_at_3=pooled("hits_at_3"),
            hits_at_10=pooled("hits_at_10"),
            num_queries=total,
        )


# ---------------------------------------------------------------------------------------------------------
# Filtered ranking
# ---------------------------------------------------------------------------------------------------------


def _check_triples(triples: torch.Tensor, *, what: str) -> torch.Tensor:
    if triples.dim() != 2 or triples.shape[1] != 3:
        raise ValueError(f"{what} must have shape [n, 3] of (head, relation, tail) ids, got {tuple(triples.shape)}")
    if triples.numel() and (triples.dtype.is_floating_point or triples.dtype.is_complex or triples.dtype == torch.bool):
        raise ValueError(f"{what} must hold integer ids, got dtype {triples.dtype}")
    return triples.long()


def doubled_queries(triples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``2n`` tail queries of ``n`` triples: ``(entities, model_relations, answers)``.

    The first ``n`` are the tail queries ``(h, 2r) -> t``, the next ``n`` the head queries ``(t, 2r+1) -> h``.
    """
    triples = _check_triples(triples, what="triples")
    h, r, t = triples.unbind(1)
    entities = torch.cat([h, t])
    relations = torch.cat([2 * r, 2 * r + 1])
    answers = torch.cat([t, h])
    return entities, relations, answers


class _FilterIndex:
    """The known answers of every query ``(entity, model_relation)``, sorted by query key, no duplicates.

    A query's key is ``entity * num_model_relations + model_relation``; answers ``>= num_candidates`` are
    dropped because they are no candidate anyway. Built once per filter and reused across blocks.
    """

    def __init__(self, *, known: torch.Tensor, num_candidates: int, num_relations: int = 0) -> None:
        known = _check_triples(known, what="known")
        entities, relations, answers = doubled_queries(known)
        max_relation = int(known[:, 1].max()) + 1 if known.numel() else 0
        self.num_model_relations = 2 * max(num_relations, max_relation, 1)
        self.num_candidates = num_candidates
        keep = (answers >= 0) & (answers < num_candidates) & (entities >= 0) & (relations >= 0)
        keys = entities[keep] * self.num_model_relations + relations[keep]
        # One sort of (key, answer) pairs: sorted by key, then answer, duplicates removed.
        width = max(num_candidates, 1)
        pairs = torch.unique(keys * width + answers[keep])
        self.width = width
        self.pairs = pairs
        self.keys = pairs // width
        self.answers = pairs % width

    def to(self, device: torch.device) -> _FilterIndex:
        if self.keys.device != device:
            self.pairs = self.pairs.to(device)
            self.keys = self.keys.to(device)
            self.answers = self.answers.to(device)
        return self

    def contains(self, entities: torch.Tensor, relations: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """``BoolTensor[b, k]``: whether ``candidates[i, j]`` is a known answer of query ``i``."""
        if self.pairs.numel() == 0:
            return torch.zeros(candidates.shape, dtype=torch.bool, device=candidates.device)
        keys = entities * self.num_model_relations + relations
        wanted = keys.unsqueeze(1) * self.width + candidates
        wanted.masked_fill_((relations >= self.num_model_relations).unsqueeze(1), -1)
        positions = torch.searchsorted(self.pairs, wanted).clamp_(max=self.pairs.numel() - 1)
        return self.pairs[positions] == wanted

    def lookup(self, entities: torch.Tensor, relations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rows, candidates)``: every known answer of every query, as positions in the query block."""
        keys = entities * self.num_model_relations + relations
        keys.masked_fill_(relations >= self.num_model_relations, -1)  # relations never seen: nothing known
        lo = torch.searchsorted(self.keys, keys)
        counts = torch.searchsorted(self.keys, keys, right=True) - lo
        total = int(counts.sum())
        rows = torch.repeat_interleave(counts, output_size=total)
        starts = (lo - counts.cumsum(0) + counts)[rows]  # lo[row] - (index of the row's first pair)
        positions = starts + torch.arange(total, device=keys.device)
        return rows, self.answers[positions]


_CHUNK_ELEMENTS = 1 << 18
"""On the CPU, scores are compared a few rows at a time so that the scratch (~1 MiB) stays in cache."""


def _count_better(*, scores: torch.Tensor, true: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the number of entries ``> true`` and ``>= true`` (NaN entries are never counted).

    Comparisons are written as 0/1 floats and summed: much faster on the CPU than summing booleans, which
    converts them to integers first. Float sums of ones are exact below 2**24 (float32) or 2**53 (float64).
    """
    b, num_candidates = scores.shape
    rows = b if scores.device.type != "cpu" else max(1, _CHUNK_ELEMENTS // max(num_candidates, 1))
    dtype = torch.float32 if num_candidates < 2**24 else torch.float64
    greater = torch.empty(b, dtype=dtype, device=scores.device)
    greater_or_equal = torch.empty(b, dtype=dtype, device=scores.device)
    scratch = torch.empty(min(rows, b), num_candidates, dtype=dtype, device=scores.device)
    for start in range(0, b, rows):
        stop = min(start + rows, b)
        part, column, flags = scores[start:stop], true[start:stop].unsqueeze(1), scratch[: stop - start]
        torch.sum(torch.gt(part, column, out=flags), 1, out=greater[start:stop])
        torch.sum(torch.ge(part, column, out=flags), 1, out=greater_or_equal[start:stop])
    return greater, greater_or_equal


def _rankable(scores: torch.Tensor) -> torch.Tensor:
    """``scores`` as :func:`_rank_block` reads them: floating point (integer scores become float64, exact up to
    2**53, so NaN can mark filtered entries) and contiguous."""
    return scores.double() if not scores.dtype.is_floating_point else scores.contiguous()


def _collected(optimistic: list[torch.Tensor], pessimistic: list[torch.Tensor]) -> Ranks:
    """The per-block ranks joined into one :class:`Ranks` (float64; empty when there were no queries)."""
    if not optimistic:
        empty = torch.empty(0, dtype=torch.float64)
        return Ranks(optimistic=empty, pessimistic=empty.clone())
    return Ranks(
        optimistic=torch.cat(optimistic).to(torch.float64),
        pessimistic=torch.cat(pessimistic).to(torch.float64),
    )


def _rank_block(
    *, scores: torch.Tensor, answers: torch.Tensor, rows: torch.Tensor, candidates: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Optimistic and pessimistic ranks of one block; ``scores`` is overwritten (filtered entries -> NaN)."""
    b, num_candidates = scores.shape
    row_ids = torch.arange(b, device=scores.device)
    true = scores[row_ids, answers]  # gathered from the same matrix, so equal computations tie exactly
    # Masked entries become NaN: NaN compares false with everything, so they are never counted.
    scores.index_put_((rows, candidates), torch.tensor(float("nan"), dtype=scores.dtype, device=scores.device))
    scores[row_ids, answers] = float("nan")
    greater, greater_or_equal = _count_better(scores=scores, true=true)
    optimistic = 1 + greater.long()
    pessimistic = 1 + greater_or_equal.long()
    nan_true = torch.isnan(true)
    if bool(nan_true.any()):
        # The answer is worst: behind every non-NaN candidate left, tied with the NaN ones left.
        which = nan_true.nonzero().squeeze(1)
        optimistic[which] = 1 + (~torch.isnan(scores[which])).sum(1)
        filtered_others = torch.bincount(rows, minlength=b) - torch.bincount(
            rows[candidates == answers[rows]], minlength=b
        )
        pessimistic[which] = num_candidates - filtered_others[which]
    return optimistic, pessimistic


def _checked_queries(triples: torch.Tensor, *, num_candidates: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`doubled_queries`, refusing entity ids that are no candidate and negative relation ids."""
    entities, relations, answers = doubled_queries(triples)
    if entities.numel():
        low = int(torch.minimum(entities.min(), answers.min()))
        high = int(torch.maximum(entities.max(), answers.max()))
        if low < 0 or high >= num_candidates:
            raise ValueError(
                f"triples hold entity ids in [{low}, {high}] but only ids 0..{num_candidates - 1} are "
                f"candidates (num_candidates={num_candidates}); raise num_candidates or drop those triples"
            )
        if int(relations.min()) < 0:
            raise ValueError("triples hold negative relation ids; relation ids must be >= 0")
    return entities, relations, answers


def _ranks_with_index(
    *, score_fn: ScoreFn, triples: torch.Tensor, index: _FilterIndex, num_candidates: int, block_size: int
) -> Ranks:
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    entities, relations, answers = _checked_queries(triples, num_candidates=num_candidates)
    optimistic: list[torch.Tensor] = []
    pessimistic: list[torch.Tensor] = []
    for start in range(0, entities.numel(), block_size):
        block = slice(start, start + block_size)
        e, r, a = entities[block], relations[block], answers[block]
        scores = score_fn(e, r, num_candidates)
        if scores.shape != (e.numel(), num_candidates):
            raise ValueError(
                f"score_fn returned shape {tuple(scores.shape)}, expected {(e.numel(), num_candidates)} "
                "(one score per query and candidate entity)"
            )
        scores = _rankable(scores)
        index.to(scores.device)
        rows, candidates = index.lookup(e.to(scores.device), r.to(scores.device))
        opt, pes = _rank_block(scores=scores, answers=a.to(scores.device), rows=rows, candidates=candidates)
        optimistic.append(opt.cpu())
        pessimistic.append(pes.cpu())
    return _collected(optimistic, pessimistic)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on ``uint64`` arrays (wraps modulo 2**64 by definition)."""
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


def sample_candidates(
    *,
    entities: torch.Tensor,
    relations: torch.Tensor,
    answers: torch.Tensor,
    sample: CandidateSample,
    num_candidates: int,
) -> torch.Tensor:
    """``LongTensor[b, sample.size]``: the fixed candidate ids of each query, drawn uniformly (with repeats) from
    ``0..num_candidates-1`` by a hash of ``(sample.seed, entity, relation, answer, j)``: the same query always gets
    the same sample, whatever the block it is in."""
    with np.errstate(over="ignore"):
        key = np.full(entities.numel(), np.uint64(sample.seed & (2**64 - 1)), dtype=np.uint64)
        for part in (entities, relations, answers):
            key = _splitmix64(key ^ part.cpu().numpy().astype(np.uint64)) + _GOLDEN
        steps = (np.arange(1, sample.size + 1, dtype=np.uint64) * _GOLDEN)[None, :]
        drawn = _splitmix64(key[:, None] + steps) % np.uint64(max(num_candidates, 1))
    return torch.from_numpy(drawn.astype(np.int64)).to(entities.device)


_SAMPLED_PAIRS = 1 << 16
"""Sampled ranking scores at most this many (query, candidate) pairs at once (bounded memory)."""

_FULL_SCORES = 1 << 22
"""Without a candidate scorer, full score rows are computed at most this many scores at a time."""


def _columns_from_full(score_fn: ScoreFn, num_candidates: int) -> CandidateScoreFn:
    """A candidate scorer that takes the needed columns out of full score rows, a few rows at a time."""

    def score(entities: torch.Tensor, relations: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        rows = max(1, _FULL_SCORES // max(num_candidates, 1))
        parts = []
        for start in range(0, entities.numel(), rows):
            block = slice(start, start + rows)
            full = score_fn(entities[block], relations[block], num_candidates)
            parts.append(full.gather(1, candidates[block].to(full.device)))
        if not parts:
            return torch.empty(candidates.shape, dtype=torch.float32)
        return torch.cat(parts)

    return score


def _sampled_ranks(
    *,
    score_fn: ScoreFn,
    candidate_score_fn: CandidateScoreFn | None,
    triples: torch.Tensor,
    index: _FilterIndex,
    num_candidates: int,
    block_size: int,
    sample: CandidateSample,
) -> Ranks:
    """Filtered ranks of the answer among its query's sampled candidates (see the module docstring)."""
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    entities, relations, answers = _checked_queries(triples, num_candidates=num_candidates)
    scorer = candidate_score_fn or _columns_from_full(score_fn, num_candidates)
    rows_per_block = max(1, min(block_size, _SAMPLED_PAIRS // (sample.size + 1)))
    optimistic: list[torch.Tensor] = []
    pessimistic: list[torch.Tensor] = []
    for start in range(0, entities.numel(), rows_per_block):
        block = slice(start, start + rows_per_block)
        e, r, a = entities[block], relations[block], answers[block]
        drawn = sample_candidates(entities=e, relations=r, answers=a, sample=sample, num_candidates=num_candidates)
        # repeats: keep the first of each run of equal ids in sorted order
        ordered, order = drawn.sort(1)
        repeated = torch.zeros_like(drawn, dtype=torch.bool)
        repeated.scatter_(1, order[:, 1:], ordered[:, 1:] == ordered[:, :-1])
        index.to(drawn.device)
        filtered = repeated | (drawn == a.unsqueeze(1)) | index.contains(e, r, drawn)
        columns = torch.cat([a.unsqueeze(1), drawn], 1)  # the answer is column 0
        scores = scorer(e, r, columns)
        if scores.shape != columns.shape:
            raise ValueError(
                f"candidate scores have shape {tuple(scores.shape)}, expected {tuple(columns.shape)} "
                "(one score per query and sampled candidate)"
            )
        scores = _rankable(scores)
        rows, cols = filtered.nonzero(as_tuple=True)
        rows, cols = rows.to(scores.device), (cols + 1).to(scores.device)
        zeros = torch.zeros(e.numel(), dtype=torch.long, device=scores.device)
        opt, pes = _rank_block(scores=scores, answers=zeros, rows=rows, candidates=cols)
        optimistic.append(opt.cpu())
        pessimistic.append(pes.cpu())
    return _collected(optimistic, pessimistic)


@torch.inference_mode()
def filtered_ranks(
    *,
    score_fn: ScoreFn,
    triples: torch.Tensor,
    known: torch.Tensor,
    num_candidates: int,
    block_size: int = 2048,
    sample: CandidateSample | None = None,
    candidate_score_fn: CandidateScoreFn | None = None,
) -> Ranks:
    """Filtered ranks of the ``2n`` queries of ``triples`` (tail queries first, then head queries).

    ``known`` holds every fact ``(h, r, t)`` (base relation ids) that counts as true: the other known answers
    of a query are removed from its candidates; the answer itself stays. Queries go to ``score_fn`` in blocks
    of ``block_size`` (default 2048) queries. Raises ``ValueError`` when a triple holds an entity id outside
    ``0..num_candidates-1``. With ``sample`` (default None: full ranking) each query is ranked against its fixed
    sample of candidates instead (ranks at most ``sample.size + 1``), scored by ``candidate_score_fn`` when given.
    """
    index = _FilterIndex(known=known, num_candidates=num_candidates)
    if sample is not None:
        return _sampled_ranks(
            score_fn=score_fn,
            candidate_score_fn=candidate_score_fn,
            triples=triples,
            index=index,
            num_candidates=num_candidates,
            block_size=block_size,
            sample=sample,
        )
    return _ranks_with_index(
        score_fn=score_fn, triples=triples, index=index, num_candidates=num_candidates, block_size=block_size
    )


# ---------------------------------------------------------------------------------------------------------
# Protocols
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalProtocol:
    """Which candidates and which filter apply to test set ``j`` evaluated after snapshot ``i`` (``j <= i``).

    ``candidates_at(i, j)`` names the snapshot whose entities (ids ``0..num_entities-1``) are the candidates;
    ``filter_upto(i, j)`` the last snapshot whose facts (train, valid and test of it and all earlier ones)
    are known.
    """

    name: str
    description: str
    candidates_at: Callable[[int, int], int]
    filter_upto: Callable[[int, int], int]


class _ProtocolRegistry(Mapping[str, EvalProtocol]):
    """A read-only name -> protocol mapping; an unknown name raises :class:`UnknownComponentError`."""

    def __init__(self, protocols: Sequence[EvalProtocol]) -> None:
        self._protocols = {p.name: p for p in protocols}

    def __getitem__(self, name: str) -> EvalProtocol:
        try:
            return self._protocols[name]
        except KeyError:
            known = ", ".join(repr(n) for n in self._protocols)
            raise UnknownComponentError(f"unknown evaluation protocol {name!r}; known protocols: {known}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._protocols)

    def __len__(self) -> int:
        return len(self._protocols)


PROTOCOLS: Mapping[str, EvalProtocol] = _ProtocolRegistry(
    [
        EvalProtocol(
            name="all-entities",
            description="all entities known after snapshot i compete; every fact of 0..i is known",
            candidates_at=lambda i, j: i,
            filter_upto=lambda i, j: i,
        ),
        EvalProtocol(
            name="lkge-paper",
            description="as in LKGE (Cui et al., AAAI 2023): only entities and facts of 0..j for test set j",
            candidates_at=lambda i, j: j,
            filter_upto=lambda i, j: j,
        ),
    ]
)


# ---------------------------------------------------------------------------------------------------------
# Stream evaluation
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamResult:
    """Metrics of the test sets ``0..i`` after snapshot ``i``.

    ``per_test_set`` lists ``(j, metrics of test set j)`` for every ``j``; ``stream`` pools them weighted by
    their number of queries (:meth:`RankingMetrics.combine`); ``protocol`` is the protocol's name; ``ranking``
    says how every query was ranked: ``"full"`` (every candidate entity) or ``"sampled-N"`` (see
    :class:`CandidateSample`).
    """

    per_test_set: list[tuple[int, RankingMetrics]]
    stream: RankingMetrics
    protocol: str
    ranking: str = FULL_RANKING

    def to_dict(self) -> dict[str, object]:
        """``{"protocol", "ranking", "stream": {...}, "per_test_set": [{"snapshot": j, "mrr": ...}, ...]}``."""
        return {
            "protocol": self.protocol,
            "ranking": self.ranking,
            "stream": self.stream.to_dict(),
            "per_test_set": [{"snapshot": j, **m.to_dict()} for j, m in self.per_test_set],
        }


class _Evaluator:
    """Evaluates test sets of one stream position, sharing filter indexes between test sets."""

    def __init__(
        self,
        *,
        score_fn: ScoreFn,
        snapshots: Sequence[Snapshot],
        upto: int,
        protocol: str,
        split: str,
        block_size: int,
        sample: CandidateSample | None = None,
        candidate_score_fn: CandidateScoreFn | None = None,
    ) -> None:
        self.protocol = PROTOCOLS[protocol]
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {', '.join(map(repr, _SPLITS))}, got {split!r}")
        if not 0 <= upto < len(snapshots):
            raise ValueError(f"upto={upto} is outside the {len(snapshots)} snapshot(s) given (0..{len(snapshots) - 1})")
        self.score_fn = score_fn
        self.snapshots = snapshots
        self.upto = upto
        self.split = split
        self.block_size = block_size
        self.sample = sample
        self.candidate_score_fn = candidate_score_fn
        self._indexes: dict[tuple[int, int], _FilterIndex] = {}

    def _index(self, *, filter_upto: int, num_candidates: int) -> _FilterIndex:
        key = (filter_upto, num_candidates)
        if key not in self._indexes:
            prefix = self.snapshots[: filter_upto + 1]
            # facts retracted up to the evaluated snapshot are no longer known: they leave the filter
            parts = [retained(self.snapshots, index=j, upto=self.upto) for j in range(len(prefix))]
            known = torch.cat([part.reshape(-1, 3).long().cpu() for part in parts])
            num_relations = max(s.num_relations for s in prefix)
            self._indexes[key] = _FilterIndex(known=known, num_candidates=num_candidates, num_relations=num_relations)
        return self._indexes[key]

    def evaluate(self, target: int) -> RankingMetrics:
        if not 0 <= target <= self.upto:
            raise ValueError(f"target={target} must lie in 0..upto={self.upto} (a test set already seen)")
        # a retracted fact leaves every test set from the snapshot that retracts it on
        triples = retained(self.snapshots, index=target, upto=self.upto, split=self.split)
        if triples.numel() == 0:
            return RankingMetrics.from_ranks(torch.empty(0))
        num_candidates = self.snapshots[self.protocol.candidates_at(self.upto, target)].num_entities
        index = self._index(filter_upto=self.protocol.filter_upto(self.upto, target), num_candidates=num_candidates)
        if self.sample is None:
            ranks = _ranks_with_index(
                score_fn=self.score_fn,
                triples=triples,
                index=index,
                num_candidates=num_candidates,
                block_size=self.block_size,
            )
        else:
            ranks = _sampled_ranks(
                score_fn=self.score_fn,
                candidate_score_fn=self.candidate_score_fn,
                triples=triples,
                index=index,
                num_candidates=num_candidates,
                block_size=self.block_size,
                sample=self.sample,
            )
        metrics = RankingMetrics.from_ranks(ranks.realistic)
        logger.debug(
            "%s %s %s set %d after snapshot %d (%d candidates): %s",
            self.protocol.name,
            ranking_label(self.sample),
            self.split,
            target,
            self.upto,
            num_candidates,
            metrics,
        )
        return metrics


@torch.inference_mode()
def evaluate_stream(
    *,
    score_fn: ScoreFn,
    snapshots: Sequence[Snapshot],
    upto: int,
    protocol: str = "all-entities",
    split: str = "test",
    block_size: int = 2048,
    sample: CandidateSample | None = None,
    candidate_score_fn: CandidateScoreFn | None = None,
) -> StreamResult:
    """Evaluate the ``split`` set (default ``"test"``, or ``"valid"``) of snapshots ``0..upto``.

    ``protocol`` (default ``"all-entities"``) names an entry of :data:`PROTOCOLS`; an unknown name raises
    :class:`~evergraph.kg.errors.UnknownComponentError`. Empty sets are listed with zero metrics and ``num_queries=0``
    and add nothing to the pooled ``stream`` metrics. ``block_size`` (default 2048) queries are scored at a
    time. ``sample`` (default None: full ranking) ranks every query against its fixed sample of candidates
    (scored by ``candidate_score_fn`` when given); the result's ``ranking`` says which.
    """
    evaluator = _Evaluator(
        score_fn=score_fn,
        snapshots=snapshots,
        upto=upto,
        protocol=protocol,
        split=split,
        block_size=block_size,
        sample=sample,
        candidate_score_fn=candidate_score_fn,
    )
    per_test_set = [(j, evaluator.evaluate(j)) for j in range(upto + 1)]
    stream = RankingMetrics.combine([m for _, m in per_test_set])
    logger.info(
        "%s %s (%s ranking) after snapshot %d: mrr=%.4f hits@1=%.4f hits@10=%.4f over %d queries",
        protocol,
        split,
        ranking_label(sample),
        upto,
        stream.mrr,
        stream.hits_at_1,
        stream.hits_at_10,
        stream.num_queries,
    )
    return StreamResult(per_test_set=per_test_set, stream=stream, protocol=protocol, ranking=ranking_label(sample))


@torch.inference_mode()
def evaluate_split(
    *,
    score_fn: ScoreFn,
    snapshots: Sequence[Snapshot],
    upto: int,
    target: int,
    protocol: str = "all-entities",
    split: str = "test",
    block_size: int = 2048,
    sample: CandidateSample | None = None,
    candidate_score_fn: CandidateScoreFn | None = None,
) -> RankingMetrics:
    """Evaluate the ``split`` set (default ``"test"``) of snapshot ``target`` after snapshot ``upto``.

    Same protocols (default ``"all-entities"``) and ``block_size`` (default 2048) as :func:`evaluate_stream`;
    validation during training is ``evaluate_split(..., upto=i, target=i, split="valid")``; ``sample`` and
    ``candidate_score_fn`` as in :func:`evaluate_stream`.
    """
    evaluator = _Evaluator(
        score_fn=score_fn,
        snapshots=snapshots,
        upto=upto,
        protocol=protocol,
        split=split,
        block_size=block_size,
        sample=sample,
        candidate_score_fn=candidate_score_fn,
    )
    return evaluator.evaluate(target)
