"""Plausibility of new facts: a calibrated probability that a fact is true, and the reason when it is low.

Before a snapshot is learned the champion cross-checks its new facts against what the graph already knows.
Three signals, each from the champion's bundle (model, known facts) and its validation facts:

1. **Embedding score** (triple classification, Socher et al. 2013): the interaction's score of ``(h, r, t)``
   against a threshold *per relation*, fitted on the validation facts and as many *type-consistent hard
   negatives* (the tail replaced by an entity seen in that relation's tail position, true facts removed): the
   threshold that classifies that relation's validation pairs best (relations with fewer than
   ``min_relation_facts`` validation facts use the global one). A logistic (Platt) fit on ``score - threshold``
   over all pairs turns the margin into a probability (balanced prior: half the checked facts true).
2. **Types** (:mod:`evergraph.kg.knowledge.types`): a head or tail that does not fit the relation's domain or
   range as the known facts show them multiplies the odds by the likelihood ratio of a misfit, measured on the
   validation facts (true) against uniformly corrupted ones.
3. **Functional relations**: a relation whose heads (in the known facts) have one tail at least
   ``functional_share`` of the time is functional; a second tail for a head that already has one (a second place
   of birth) multiplies the odds by ``functional_odds`` (a prior, default 0.1, not fitted).

A fact is a *suspect* when its probability is below ``threshold`` (default 0.5). Facts with an entity or
relation the champion has never seen cannot be scored by the embeddings; they keep the prior 0.5 updated by
whatever of signals 2-3 applies (``scored = "partial"``) or no probability at all (``scored = "none"``, a new
relation). A fact the champion already knows gets probability 1 (``scored = "known"``). Suspects carry readable
reasons.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from evergraph.kg.engine.atomic import write_json
from evergraph.kg.engine.model import KGEModel
from evergraph.kg.errors import PlausibilityError
from evergraph.kg.knowledge.types import DEFAULT_MIN_SHARE, RoleTypes, role_types
from evergraph.kg.store.facts import FactTable

if TYPE_CHECKING:
    from evergraph.kg.engine.ingest import GrowingKG
    from evergraph.kg.store.bundle import Bundle

logger = logging.getLogger(__name__)

__all__ = [
    "PLAUSIBILITY_FILE",
    "PlausibilityConfig",
    "PlausibilityModel",
    "Verdict",
    "check_facts",
    "check_labelled",
    "fit_for_bundle",
    "fit_plausibility",
    "hard_negatives",
    "load_or_fit",
    "read_triples_file",
]

FORMAT = 1


class PlausibilityConfig(BaseModel):
    """How the plausibility filter is fitted and applied."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(0.5, gt=0, lt=1, description="a fact below this probability is a suspect")
    min_share: float = Field(DEFAULT_MIN_SHARE, ge=0, le=1, description="type fit needed (kg.knowledge.types)")
    max_valid: int = Field(20000, gt=0, description="validation facts used for fitting at most (sampled)")
    min_relation_facts: int = Field(5, ge=1, description="fewer validation facts: the relation uses the global cut")
    functional_share: float = Field(0.95, gt=0, le=1, description="heads with one tail needed for functional")
    functional_min_heads: int = Field(5, ge=1, description="heads a relation needs before it can be functional")
    functional_odds: float = Field(0.1, gt=0, le=1, description="odds factor for contradicting a functional one")
    seed: int = Field(0, description="sampling seed (negatives, validation subsample)")


@dataclass
class PlausibilityModel:
    """What :func:`fit_plausibility` learned; JSON-serialisable (:meth:`save` / :meth:`load`)."""

    version: str
    interaction: str
    thresholds: dict[int, float]
    global_threshold: float
    slope: float
    bias: float
    typical: dict[int, float]
    type_ratio: float
    functional: list[int]
    config: dict[str, Any]
    fitted_on: dict[str, int] = field(default_factory=dict)

    def threshold_of(self, relation: int) -> float:
        return self.thresholds.get(relation, self.global_threshold)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["thresholds"] = {str(k): v for k, v in self.thresholds.items()}
        data["typical"] = {str(k): v for k, v in self.typical.items()}
        return {"format": FORMAT, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlausibilityModel:
        if data.get("format") != FORMAT:
            raise PlausibilityError(f"unsupported plausibility format {data.get('format')!r}; fit it again")
        data = {k: v for k, v in data.items() if k != "format"}
        data["thresholds"] = {int(k): float(v) for k, v in data["thresholds"].items()}
        data["typical"] = {int(k): float(v) for k, v in data["typical"].items()}
        return cls(**data)

    def save(self, path: Path | str) -> None:
        write_json(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: Path | str) -> PlausibilityModel:
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise PlausibilityError(
                f"{path} is missing; fit the plausibility filter (evergraph check --data)"
            ) from None
        except (ValueError, KeyError, TypeError) as error:
            raise PlausibilityError(f"{path} is not a plausibility model ({error}); fit it again") from None


@dataclass(frozen=True)
class Verdict:
    """The check of one fact (ids; ``-1`` for what the champion does not know)."""

    head: int
    relation: int
    tail: int
    probability: float | None
    suspect: bool
    scored: Literal["known", "full", "partial", "none"]
    score: float | None = None
    threshold: float | None = None
    type_misfit: Literal["head", "tail", "both"] | None = None
    contradicts: int | None = None  # the known tail a functional relation already has


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x > -700 else 0.0


def hard_negatives(
    triples: torch.Tensor, *, facts: FactTable, true: torch.Tensor, generator: torch.Generator, draws: int = 10
) -> torch.Tensor:
    """One type-consistent hard negative per fact ``[n, 3]``: the tail replaced by an entity seen in the
    relation's tail position in ``facts`` (uniformly among them), the first of ``draws`` (default 10) draws that is
    neither a ``true`` triple (``[m, 3]``, base ids) nor the tail itself; facts for which none is found (or whose
    relation has fewer than two such tails) are dropped. All facts are drawn for at once. Returns ``[k, 3]``,
    ``k <= n``, in the order of ``triples``."""
    triples = torch.as_tensor(triples, dtype=torch.long).reshape(-1, 3)
    if len(triples) == 0:
        return triples.clone()
    # the pools: every relation's distinct tails, relation by relation
    pairs = torch.unique(facts.facts[:, 1] * facts.num_entities + facts.facts[:, 2])  # 1-D: unique(dim=0) is slow
    pools = torch.stack([pairs // facts.num_entities, pairs % facts.num_entities], dim=1)
    sizes = torch.bincount(pools[:, 0], minlength=facts.num_relations)
    offsets = torch.cumsum(sizes, 0) - sizes
    h, r, t = triples.unbind(1)
    size = sizes[r.clamp(0, facts.num_relations - 1)] * ((r >= 0) & (r < facts.num_relations))
    drawn = (torch.rand(len(triples), draws, generator=generator) * size.unsqueeze(1)).long()
    drawn = torch.minimum(drawn, (size - 1).clamp(min=0).unsqueeze(1))
    candidate = pools[(offsets[r.clamp(0, facts.num_relations - 1)].unsqueeze(1) + drawn).clamp(max=len(pools) - 1), 1]
    # "is it true?" as sorted integer keys of (head, relation, tail)
    true = torch.as_tensor(true, dtype=torch.long).reshape(-1, 3)
    both = torch.cat([true, triples])
    width = max(int(both[:, [0, 2]].max()) + 1, facts.num_entities)
    relations = max(int(both[:, 1].max()) + 1, facts.num_relations)
    known = torch.unique((true[:, 0] * relations + true[:, 1]) * width + true[:, 2])
    keys = ((h * relations + r) * width).unsqueeze(1) + candidate
    is_true = torch.zeros_like(keys, dtype=torch.bool)
    if len(known):
        is_true = known[torch.searchsorted(known, keys).clamp(max=len(known) - 1)] == keys
    usable = (candidate != t.unsqueeze(1)) & ~is_true & (size >= 2).unsqueeze(1)
    first = usable.int().argmax(1)
    chosen = candidate[torch.arange(len(triples)), first]
    keep = usable.any(1)
    return torch.stack([h, r, chosen], dim=1)[keep]


@torch.no_grad()
def _scores(model: KGEModel, triples: torch.Tensor) -> torch.Tensor:
    if len(triples) == 0:
        return torch.zeros(0)
    h, r, t = triples.to(model.device).unbind(1)
    return model.score(torch.stack([h, 2 * r, t], dim=1)).float().cpu()


def _best_cut(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """The score threshold that classifies ``positive`` (above) and ``negative`` (below) best (mid-points)."""
    scores = torch.cat([positive, negative])
    labels = torch.cat([torch.ones(len(positive)), torch.zeros(len(negative))])
    order = torch.argsort(scores)
    scores, labels = scores[order], labels[order]
    # cut below index i: negatives among the first i are right, positives from i on are right
    right = torch.cat([torch.zeros(1), torch.cumsum(1 - labels, 0)]) + torch.cat(
        [labels.flip(0).cumsum(0).flip(0), torch.zeros(1)]
    )
    best = int(torch.argmax(right))
    if best == 0:
        return float(scores[0]) - 1e-6
    if best == len(scores):
        return float(scores[-1]) + 1e-6
    return float((scores[best - 1] + scores[best]) / 2)


def _platt(margins: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Logistic fit ``p = sigmoid(a * margin + b)`` (LBFGS on the mean log loss, tiny L2 on ``a`` and ``b``)."""
    scale = float(margins.std().clamp(min=1e-6))
    params = torch.tensor([1.0, 0.0], requires_grad=True)
    optimizer = torch.optim.LBFGS([params], max_iter=200, line_search_fn="strong_wolfe")
    x = margins / scale

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(params[0] * x + params[1], labels)
        loss = loss + 1e-4 * params.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    a, b = params.detach().tolist()
    return a / scale, b


def _functional(facts: FactTable, config: PlausibilityConfig) -> list[int]:
    known = facts.facts
    found = []
    for relation in torch.unique(known[:, 1]).tolist():
        rows = known[known[:, 1] == relation]
        _, counts = torch.unique(rows[:, 0], return_counts=True)
        if (
            len(counts) >= config.functional_min_heads
            and float((counts == 1).float().mean()) >= config.functional_share
        ):
            found.append(int(relation))
    return found


def _misfit(types: RoleTypes, triples: torch.Tensor, min_share: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Bool ``(head misfit, tail misfit)`` per triple ``[n, 3]`` (base relation ids; ``-1`` for what is unknown:
    an unknown side never misfits, nor does a triple of an unknown relation), in blocks of bounded memory."""
    head, tail = torch.zeros(len(triples), dtype=torch.bool), torch.zeros(len(triples), dtype=torch.bool)
    for start in range(0, len(triples), 4096):
        h, r, t = triples[start : start + 4096].unbind(1)
        known, relation = r >= 0, r.clamp(min=0)
        head[start : start + len(h)] = known & (h >= 0) & ~types.fits(h, 2 * relation + 1, min_share=min_share)
        tail[start : start + len(h)] = known & (t >= 0) & ~types.fits(t, 2 * relation, min_share=min_share)
    return head, tail


def fit_plausibility(
    *,
    model: KGEModel,
    facts: FactTable,
    valid: torch.Tensor,
    version: str = "",
    config: PlausibilityConfig | None = None,
) -> PlausibilityModel:
    """Fit the filter of ``model`` (the champion) on ``valid`` facts ``[m, 3]`` (base ids, true, not in
    ``facts``), against type-consistent hard negatives (:func:`hard_negatives`); ``facts`` are the known facts.
    ``PlausibilityError`` when there are no usable validation facts."""
    config = config or PlausibilityConfig()
    valid = torch.as_tensor(valid, dtype=torch.long).reshape(-1, 3)
    generator = torch.Generator().manual_seed(config.seed)
    if len(valid) > config.max_valid:
        valid = valid[torch.randperm(len(valid), generator=generator)[: config.max_valid]]
    true = torch.cat([facts.facts[:, :3], valid])
    negatives = hard_negatives(valid, facts=facts, true=true, generator=generator)
    if len(valid) == 0 or len(negatives) == 0:
        raise PlausibilityError(
            "no validation facts (or no hard negatives for them) to fit the plausibility filter on; the champion's "
            "snapshots need valid.txt facts about relations with at least two known tails"
        )
    pos, neg = _scores(model, valid), _scores(model, negatives)
    global_cut = _best_cut(pos, neg)
    thresholds: dict[int, float] = {}
    typical: dict[int, float] = {}
    for relation in torch.unique(valid[:, 1]).tolist():
        p, n = pos[valid[:, 1] == relation], neg[negatives[:, 1] == relation]
        typical[int(relation)] = float(p.median())
        if len(p) >= config.min_relation_facts and len(n) >= config.min_relation_facts:
            thresholds[int(relation)] = _best_cut(p, n)
    cuts = torch.tensor([thresholds.get(r, global_cut) for r in valid[:, 1].tolist()])
    cuts_n = torch.tensor([thresholds.get(r, global_cut) for r in negatives[:, 1].tolist()])
    margins = torch.cat([pos - cuts, neg - cuts_n])
    labels = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))])
    slope, bias = _platt(margins, labels)
    # type misfits: how much likelier among uniformly corrupted facts than among true ones
    types = role_types(facts)
    uniform = valid.clone()
    uniform[:, 2] = torch.randint(facts.num_entities, (len(valid),), generator=generator)
    mis_pos = torch.stack(_misfit(types, valid, config.min_share)).any(0).float().mean()
    mis_neg = torch.stack(_misfit(types, uniform, config.min_share)).any(0).float().mean()
    smooth = 1.0 / (len(valid) + 1)
    type_ratio = min(1.0, float((mis_pos + smooth) / (mis_neg + smooth)))
    fitted = PlausibilityModel(
        version=str(version),
        interaction=model.interaction_name,
        thresholds=thresholds,
        global_threshold=global_cut,
        slope=slope,
        bias=bias,
        typical=typical,
        type_ratio=type_ratio,
        functional=_functional(facts, config),
        config=config.model_dump(),
        fitted_on={"valid": len(valid), "negatives": len(negatives)},
    )
    logger.info(
        "plausibility fitted on %d validation facts + %d hard negatives: %d relation thresholds, type ratio %.3f, "
        "%d functional relations",
        len(valid),
        len(negatives),
        len(thresholds),
        type_ratio,
        len(fitted.functional),
    )
    return fitted


def check_facts(
    plausibility: PlausibilityModel,
    *,
    model: KGEModel,
    facts: FactTable,
    triples: Sequence[tuple[int, int, int]],
) -> list[Verdict]:
    """Verdicts for ``triples`` (base ids; ``-1`` where the champion does not know the entity or relation), in
    order (module docstring). Every signal is computed for all facts at once (tens of thousands per snapshot)."""
    config = PlausibilityConfig.model_validate(plausibility.config)
    types = role_types(facts)
    rows = torch.tensor(list(triples), dtype=torch.long).reshape(-1, 3)
    h, r, t = rows.unbind(1)
    full = (rows >= 0).all(1)
    scores = torch.full((len(rows),), float("nan"))
    if bool(full.any()):
        scores[full] = _scores(model, rows[full])
    known = facts.contains_many(rows)
    misfit_head, misfit_tail = (side.tolist() for side in _misfit(types, rows, config.min_share))
    # a functional relation contradicted: the head already has a known tail other than this one
    functional = torch.tensor(sorted(plausibility.functional), dtype=torch.long)
    candidates = torch.isin(r, functional) & (h >= 0) & (r >= 0)
    others = torch.zeros(len(rows), dtype=torch.long)
    if bool(candidates.any()):
        others[candidates] = facts.answer_counts(h[candidates], 2 * r[candidates]) - known[candidates].long()
    cuts = torch.tensor([plausibility.threshold_of(x) for x in r.tolist()], dtype=torch.float)
    logits = plausibility.slope * (scores - cuts) + plausibility.bias
    verdicts = []
    for i, (head, relation, tail) in enumerate(rows.tolist()):
        if relation < 0:
            verdicts.append(Verdict(head, relation, tail, None, False, "none"))
            continue
        if bool(known[i]):
            verdicts.append(Verdict(head, relation, tail, 1.0, False, "known", float(scores[i])))
            continue
        scored = bool(full[i])
        logit = float(logits[i]) if scored else 0.0
        misfit: Literal["head", "tail", "both"] | None = None
        if misfit_head[i] or misfit_tail[i]:
            misfit = "both" if misfit_head[i] and misfit_tail[i] else ("head" if misfit_head[i] else "tail")
            logit += math.log(plausibility.type_ratio)
        contradicts = None
        if others[i] > 0:
            contradicts = next(int(x) for x in facts.answers(head, 2 * relation).tolist() if x != tail)
            logit += math.log(config.functional_odds)
        probability = _sigmoid(logit)
        verdicts.append(
            Verdict(
                head,
                relation,
                tail,
                probability,
                probability < config.threshold,
                "full" if scored else "partial",
                float(scores[i]) if scored else None,
                float(cuts[i]) if scored else None,
                misfit,
                contradicts,
            )
        )
    return verdicts


def reason(
    verdict: Verdict,
    *,
    plausibility: PlausibilityModel,
    entity: Callable[[int], str],
    relation: Callable[[int], str],
    labels: tuple[str, str, str],
) -> str | None:
    """Readable reasons for a suspect (``None`` for a fact that is not one); ``entity``/``relation`` name ids,
    ``labels`` are the fact's own labels (for what the champion does not know)."""
    if verdict.scored == "none":
        return f"not scored: relation {labels[1]!r} is new to the champion"
    if not verdict.suspect:
        return None
    parts = []
    rel = relation(verdict.relation)
    if verdict.type_misfit in ("tail", "both"):
        parts.append(f"{entity(verdict.tail)} has never been the tail of {rel} nor plays a role its tails play")
    if verdict.type_misfit in ("head", "both"):
        parts.append(f"{entity(verdict.head)} has never been the head of {rel} nor plays a role its heads play")
    if verdict.score is not None and verdict.threshold is not None and verdict.score < verdict.threshold:
        typical = plausibility.typical.get(verdict.relation)
        where = f", its true facts score about {typical:.2f}" if typical is not None else ""
        parts.append(f"embedding score {verdict.score:.2f} is below {rel}'s threshold {verdict.threshold:.2f}{where}")
    if verdict.contradicts is not None:
        parts.append(
            f"contradicts functional relation {rel}: {entity(verdict.head)} already has {entity(verdict.contradicts)}"
        )
    if verdict.scored == "partial":
        parts.append("an entity is new to the champion, so the embeddings could not score it")
    return "; ".join(parts) or "low probability"


# -- a bundle's filter and checks by label ------------------------------------------------------------------


def bundle_valid_facts(bundle: Bundle, data: Path | str) -> torch.Tensor:
    """The validation facts of snapshots ``0..bundle.snapshot`` of ``data`` (the source the bundle learned) in
    the bundle's ids, ``[m, 3]``; facts the bundle cannot name (a different source) are skipped."""
    from evergraph.kg.engine.ingest import load_shared
    from evergraph.kg.engine.sources import open_source

    # a champion of another lineage may have learned more snapshots than this source holds: use those there are
    kg = load_shared(data, upto=min(bundle.snapshot, open_source(data).count() - 1))
    return in_bundle_ids(bundle, kg, torch.cat([snapshot.valid for snapshot in kg.snapshots]))


def in_bundle_ids(bundle: Bundle, kg: GrowingKG, rows: torch.Tensor) -> torch.Tensor:
    """``rows`` (``[n, 3]`` in ``kg``'s ids) in ``bundle``'s ids, ``[m, 3]``; facts about an entity or relation
    the bundle cannot name are left out."""
    out = []
    for h, r, t in rows.tolist():
        ids = (
            bundle.entities.get(kg.entities.label(h)),
            bundle.relations.get(kg.relations.label(r)),
            bundle.entities.get(kg.entities.label(t)),
        )
        if None not in ids:
            out.append(ids)
    return torch.tensor(out, dtype=torch.long).reshape(-1, 3)


def fit_for_bundle(bundle: Bundle, data: Path | str, *, config: PlausibilityConfig | None = None) -> PlausibilityModel:
    """:func:`fit_plausibility` for ``bundle`` on the validation facts of ``data`` (:func:`bundle_valid_facts`)."""
    valid = bundle_valid_facts(bundle, data)
    return fit_plausibility(model=bundle.model, facts=bundle.facts, valid=valid, version=bundle.version, config=config)


def plausibility_path(home_root: Path | str, version: str) -> Path:
    """Where the filter of model version ``version`` is kept in a home: ``HOME/trust/v<version>/plausibility.json``."""
    return Path(home_root) / "trust" / f"v{version}" / "plausibility.json"


PLAUSIBILITY_FILE = "plausibility.json"
"""A bundle's plausibility filter, fitted when the bundle is written (:mod:`evergraph.kg.knowledge.bundle_trust`)."""


def load_or_fit(
    bundle: Bundle, *, home_root: Path | str, data: Path | str | None, config: PlausibilityConfig | None = None
) -> PlausibilityModel:
    """The filter of ``bundle``: the one it carries (``plausibility.json``, fitted when it was written), else the
    one kept in the home, else fitted on ``data`` (and kept in the home); without ``data`` a missing filter is a
    :class:`PlausibilityError` that says what to pass. ``config`` (default ``PlausibilityConfig()``) only applies
    to a new fit."""
    carried = bundle.path / PLAUSIBILITY_FILE
    if carried.is_file() and config is None:
        return PlausibilityModel.load(carried)
    path = plausibility_path(home_root, bundle.version)
    if path.is_file():
        return PlausibilityModel.load(path)
    if data is None:
        raise PlausibilityError(
            f"model version {bundle.version} has no plausibility filter yet ({path}); pass --data DIR (the source it "
            "learned) to fit it on its validation facts, or run the pipeline, which fits it"
        )
    fitted = fit_for_bundle(bundle, data, config=config)
    fitted.save(path)
    return fitted


def read_triples_file(path: Path | str) -> list[tuple[str, str, str]]:
    """``head<TAB>relation<TAB>tail`` lines of ``path`` (blank lines skipped); a bad line is a
    :class:`PlausibilityError` naming ``file:line``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlausibilityError(f"{path} does not exist; pass a file of head<TAB>relation<TAB>tail lines") from None
    except UnicodeDecodeError as error:
        raise PlausibilityError(f"{path} is not valid UTF-8 ({error})") from None
    triples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3 or any(not f or f != f.strip() for f in fields):
            raise PlausibilityError(
                f"{path}:{number}: expected head<TAB>relation<TAB>tail (3 non-empty fields without surrounding "
                f"spaces), got {line!r}"
            )
        triples.append((fields[0], fields[1], fields[2]))
    return triples


def check_labelled(
    bundle: Bundle, plausibility: PlausibilityModel, triples: Sequence[tuple[str, str, str]]
) -> list[dict[str, Any]]:
    """Check facts given by label against ``bundle``: one JSON-ready dict per fact, in order, with ``head``,
    ``relation``, ``tail``, ``probability`` (``None`` when not scored), ``reason`` (``None`` unless a suspect or
    not scored), ``suspect`` and ``scored``."""
    ids = [
        (
            _get(bundle.entities, h),
            _get(bundle.relations, r),
            _get(bundle.entities, t),
        )
        for h, r, t in triples
    ]
    verdicts = check_facts(plausibility, model=bundle.model, facts=bundle.facts, triples=ids)

    def entity(i: int) -> str:
        label = bundle.entities.label(i)
        return bundle.entity_names.get(label, label)

    def relation(i: int) -> str:
        label = bundle.relations.label(i)
        return bundle.relation_names.get(label, label)

    rows = []
    for (h, r, t), verdict in zip(triples, verdicts, strict=True):
        text = reason(verdict, plausibility=plausibility, entity=entity, relation=relation, labels=(h, r, t))
        rows.append(
            {
                "head": h,
                "relation": r,
                "tail": t,
                "probability": None if verdict.probability is None else round(verdict.probability, 4),
                "reason": text,
                "suspect": verdict.suspect,
                "scored": verdict.scored,
            }
        )
    return rows


def _get(vocab: Any, label: str) -> int:
    found = vocab.get(label)
    return -1 if found is None else int(found)


def snapshot_facts(source: Path | str, snapshot: int) -> list[tuple[str, str, str]]:
    """The facts new in ``snapshot`` of ``source`` (train, valid, test), as labels."""
    from evergraph.kg.engine.ingest import load_shared

    kg = load_shared(source, upto=snapshot)
    rows = kg.snapshots[snapshot].facts.tolist()
    entity, relation = kg.entities.label, kg.relations.label
    return [(entity(h), relation(r), entity(t)) for h, r, t in rows]


def report_path(home_root: Path | str, lineage: str, snapshot: int) -> Path:
    """Where the plausibility report of a lineage's snapshot is kept: ``HOME/trust/reports/<lineage>/N.json``."""
    return Path(home_root) / "trust" / "reports" / lineage / f"snapshot-{snapshot}.json"
