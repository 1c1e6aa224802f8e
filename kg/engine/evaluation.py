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
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

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

_SPLITS = ("test", "valid")


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
        self.keys = pairs // width
        self.answers = pairs % width

    def to(self, device: torch.device) -> _FilterIndex:
        if self.keys.device != device:
            self.keys = self.keys.to(device)
            self.answers = self.answers.to(device)
        return self

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


def _ranks_with_index(
    *, score_fn: ScoreFn, triples: torch.Tensor, index: _FilterIndex, num_candidates: int, block_size: int
) -> Ranks:
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
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
        if not scores.dtype.is_floating_point:
            scores = scores.double()  # integer scores: exact up to 2**53, and NaN can mark filtered entries
        elif not scores.is_contiguous():
            scores = scores.contiguous()
        index.to(scores.device)
        rows, candidates = index.lookup(e.to(scores.device), r.to(scores.device))
        opt, pes = _rank_block(scores=scores, answers=a.to(scores.device), rows=rows, candidates=candidates)
        optimistic.append(opt.cpu())
        pessimistic.append(pes.cpu())
    if not optimistic:
        empty = torch.empty(0, dtype=torch.float64)
        return Ranks(optimistic=empty, pessimistic=empty.clone())
    return Ranks(
        optimistic=torch.cat(optimistic).to(torch.float64),
        pessimistic=torch.cat(pessimistic).to(torch.float64),
    )


@torch.inference_mode()
def filtered_ranks(
    *,
    score_fn: ScoreFn,
    triples: torch.Tensor,
    known: torch.Tensor,
    num_candidates: int,
    block_size: int = 2048,
) -> Ranks:
    """Filtered ranks of the ``2n`` queries of ``triples`` (tail queries first, then head queries).

    ``known`` holds every fact ``(h, r, t)`` (base relation ids) that counts as true: the other known answers
    of a query are removed from its candidates; the answer itself stays. Queries go to ``score_fn`` in blocks
    of ``block_size`` (default 2048) queries. Raises ``ValueError`` when a triple holds an entity id outside
    ``0..num_candidates-1``.
    """
    index = _FilterIndex(known=known, num_candidates=num_candidates)
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
    their number of queries (:meth:`RankingMetrics.combine`); ``protocol`` is the protocol's name.
    """

    per_test_set: list[tuple[int, RankingMetrics]]
    stream: RankingMetrics
    protocol: str

    def to_dict(self) -> dict[str, object]:
        """``{"protocol": ..., "stream": {...}, "per_test_set": [{"snapshot": j, "mrr": ..., ...}, ...]}``."""
        return {
            "protocol": self.protocol,
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
        ranks = _ranks_with_index(
            score_fn=self.score_fn,
            triples=triples,
            index=index,
            num_candidates=num_candidates,
            block_size=self.block_size,
        )
        metrics = RankingMetrics.from_ranks(ranks.realistic)
        logger.debug(
            "%s %s set %d after snapshot %d (%d candidates): %s",
            self.protocol.name,
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
) -> StreamResult:
    """Evaluate the ``split`` set (default ``"test"``, or ``"valid"``) of snapshots ``0..upto``.

    ``protocol`` (default ``"all-entities"``) names an entry of :data:`PROTOCOLS`; an unknown name raises
    :class:`~evergraph.kg.errors.UnknownComponentError`. Empty sets are listed with zero metrics and ``num_queries=0``
    and add nothing to the pooled ``stream`` metrics. ``block_size`` (default 2048) queries are scored at a
    time.
    """
    evaluator = _Evaluator(
        score_fn=score_fn,
        snapshots=snapshots,
        upto=upto,
        protocol=protocol,
        split=split,
        block_size=block_size,
    )
    per_test_set = [(j, evaluator.evaluate(j)) for j in range(upto + 1)]
    stream = RankingMetrics.combine([m for _, m in per_test_set])
    logger.info(
        "%s %s after snapshot %d: mrr=%.4f hits@1=%.4f hits@10=%.4f over %d queries",
        protocol,
        split,
        upto,
        stream.mrr,
        stream.hits_at_1,
        stream.hits_at_10,
        stream.num_queries,
    )
    return StreamResult(per_test_set=per_test_set, stream=stream, protocol=protocol)


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
) -> RankingMetrics:
    """Evaluate the ``split`` set (default ``"test"``) of snapshot ``target`` after snapshot ``upto``.

    Same protocols (default ``"all-entities"``) and ``block_size`` (default 2048) as :func:`evaluate_stream`;
    validation during training is ``evaluate_split(..., upto=i, target=i, split="valid")``.
    """
    evaluator = _Evaluator(
        score_fn=score_fn,
        snapshots=snapshots,
        upto=upto,
        protocol=protocol,
        split=split,
        block_size=block_size,
    )
    return evaluator.evaluate(target)
