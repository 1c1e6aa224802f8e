"""Calibrated confidence for inferred facts: how likely a link prediction is a true fact.

A link prediction ranks every entity as the answer of ``(entity, relation, ?)``; its raw score (minus the
embedding distance) is not a probability and its scale differs between relations. :func:`fit_calibration` turns
it into one by **Platt scaling** (logistic regression) on held-out facts:

1. Queries: up to ``max_facts`` (default 4,000) validation facts ``(h, r, t)``, each asked in both directions
   (``(h, r, ?)`` and ``(t, r^-1, ?)``), exactly as serving asks them: the entities already known as answers of
   the query (training facts) and the query entity itself are excluded, then the top ``k`` (default 10) remain.
2. Labels: a candidate is positive when the predicted fact is a validation fact. (Open world: a true fact that
   is in no split counts as negative, so confidences are, if anything, too low.)
3. Features per candidate: the raw score, its gap to the query's best score, ``log(rank)``, its ``share`` of
   the softmax over the query's top-``k`` scores (large when it stands out from the others), whether the query
   entity already has a known answer for that relation in that direction (``role_seen``: a second answer of a
   functional relation such as ``located in`` is unlikely), and whether the candidate already plays the answer's
   role of that relation in some known fact (``answer_role_seen``: a type check learned from the graph, so a
   person is not predicted as the country a city is located in). Features are standardised with the fitting
   set's mean and deviation.
4. The logistic model is fitted (L-BFGS, a little L2) on half the queries and measured on the other half:
   ``ece`` (expected calibration error over 10 equal-width bins) and ``brier`` are kept with the weights, so the
   bundle says how well its confidences are calibrated. A confidence is therefore "the share of such
   predictions that were true on held-out facts", in ``[0, 1]``.

With no validation facts the calibration is *uninformed*: every confidence is 0, so nothing is inferred.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from evergraph.kg.engine.model import KGEModel
from evergraph.kg.store.facts import FactTable

logger = logging.getLogger(__name__)

__all__ = ["FEATURES", "Calibration", "filtered_top_k", "fit_calibration", "roles"]

FEATURES = ("score", "gap", "log_rank", "share", "role_seen", "answer_role_seen")
"""The features of a candidate, in the order of :attr:`Calibration.weights`."""


@dataclass(frozen=True)
class Calibration:
    """A fitted Platt scaling of link-prediction scores (see the module docstring). Use :meth:`confidence`."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    k: int = 10
    queries: int = 0
    samples: int = 0
    held_out_samples: int = 0
    positive_rate: float = 0.0
    ece: float | None = None
    brier: float | None = None
    method: str = "platt"

    @classmethod
    def uninformed(cls, *, k: int = 10) -> Calibration:
        """A calibration with no evidence: every confidence is 0."""
        zeros = (0.0,) * len(FEATURES)
        return cls(mean=zeros, std=(1.0,) * len(FEATURES), weights=zeros, bias=-math.inf, k=k)

    @property
    def informed(self) -> bool:
        """Whether it was fitted on facts (an uninformed one gives confidence 0 to everything)."""
        return math.isfinite(self.bias)

    def confidence(self, scores: torch.Tensor, role: torch.Tensor, answer_role: torch.Tensor) -> torch.Tensor:
        """Confidences ``[b, k]`` in ``[0, 1]`` of ranked candidates with raw ``scores`` ``[b, k]`` (best first,
        ``-inf`` where there is no candidate), ``role`` ``[b]`` and ``answer_role`` ``[b, k]`` (bool: see
        :func:`roles`)."""
        if not self.informed:
            return torch.zeros_like(scores, dtype=torch.float32)
        x = candidate_features(scores, role, answer_role)
        mean, std = torch.tensor(self.mean), torch.tensor(self.std)
        logits = ((x - mean) / std) @ torch.tensor(self.weights) + self.bias
        return torch.sigmoid(logits).masked_fill(~torch.isfinite(scores), 0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``bias`` of an uninformed calibration is ``None``)."""
        data = asdict(self)
        data["features"] = list(FEATURES)
        data["bias"] = self.bias if self.informed else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict`; unknown features are a ``ValueError``."""
        if tuple(data.get("features", FEATURES)) != FEATURES:
            raise ValueError(f"calibration features {data.get('features')} are not {list(FEATURES)}")
        fields = {key: value for key, value in data.items() if key != "features"}
        for key in ("mean", "std", "weights"):
            fields[key] = tuple(float(v) for v in fields[key])
        fields["bias"] = -math.inf if fields.get("bias") is None else float(fields["bias"])
        return cls(**fields)


def candidate_features(scores: torch.Tensor, role: torch.Tensor, answer_role: torch.Tensor) -> torch.Tensor:
    """Features ``[b, k, 6]`` (:data:`FEATURES`) of ranked candidates; missing candidates get finite dummies."""
    finite = torch.isfinite(scores)
    safe = torch.where(finite, scores, torch.zeros_like(scores)).float()
    best = safe[:, :1]
    ranks = torch.arange(1, scores.shape[1] + 1, dtype=torch.float32).log().expand_as(safe)
    roles = role.float().reshape(-1, 1).expand_as(safe)
    share = torch.softmax(scores.float(), dim=1).nan_to_num(0.0)  # of the top-k scores (margins to the others)
    return torch.stack([safe, safe - best, ranks, share, roles, answer_role.float()], dim=2)


def roles(
    facts: FactTable, entities: torch.Tensor, relations: torch.Tensor, answers: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(role [b], answer_role [b, k])``: whether ``entities[i]`` has a known answer for model relation
    ``relations[i]``, and whether candidate ``answers[i, j]`` is the answer of some known fact of that relation
    (it is the query entity of the inverse relation, ``relations[i] ^ 1``); ``-1`` answers get ``False``."""
    role = facts.has_answers(entities, relations)
    inverse = (relations ^ 1).reshape(-1, 1).expand_as(answers)
    answer_role = facts.has_answers(answers.clamp_min(0), inverse) & (answers >= 0)
    return role, answer_role


@torch.no_grad()
def filtered_top_k(
    model: KGEModel, facts: FactTable, entities: torch.Tensor, relations: torch.Tensor, *, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact filtered top-``k`` by brute force: scores ``-||query - e||`` over every entity, with the known
    answers and the query entity excluded. Returns ``(scores, ids)`` ``[b, k]`` (``-inf``/``-1`` when fewer)."""
    queries = model.query(entities.to(model.device), relations.to(model.device)).float()
    table = model.entity.detach().float()
    scores = model.interaction.candidate_scores(queries, table).cpu()
    query, answer = facts.answers_many(entities, relations)
    scores[query, answer] = -math.inf  # the known answers
    scores[torch.arange(len(entities)), entities.long()] = -math.inf  # and the query entity itself
    k = min(k, scores.shape[1])
    top, ids = scores.topk(k, dim=1)
    return top, ids.masked_fill(~torch.isfinite(top), -1)


def _ece(probabilities: torch.Tensor, labels: torch.Tensor, *, bins: int = 10) -> float:
    edges = torch.linspace(0, 1, bins + 1)
    which = torch.bucketize(probabilities, edges[1:-1])
    total = 0.0
    for b in range(bins):
        inside = which == b
        if bool(inside.any()):
            total += float(inside.sum()) * abs(float(probabilities[inside].mean() - labels[inside].mean()))
    return total / max(len(labels), 1)


def fit_calibration(
    *,
    model: KGEModel,
    facts: FactTable,
    valid: torch.Tensor,
    k: int = 10,
    max_facts: int = 4000,
    seed: int = 0,
    batch_size: int = 512,
) -> Calibration:
    """Fit the confidence of ``model``'s filtered top-``k`` predictions (default 10) on ``valid`` facts
    ``[m, 3]`` (base relation ids), at most ``max_facts`` (default 4,000) of them, sampled with ``seed``
    (default 0); ``facts`` are the known (training) facts. See the module docstring for the method."""
    valid = torch.as_tensor(valid, dtype=torch.long).reshape(-1, 3)
    if len(valid) == 0:
        logger.warning("no validation facts to calibrate on: inferred facts get confidence 0")
        return Calibration.uninformed(k=k)
    generator = torch.Generator().manual_seed(seed)
    if len(valid) > max_facts:
        valid = valid[torch.randperm(len(valid), generator=generator)[:max_facts]]
    h, r, t = valid.unbind(1)
    entities = torch.cat([h, t])
    relations = torch.cat([2 * r, 2 * r + 1])
    width, n = 2 * facts.num_relations, facts.num_entities
    truth = torch.cat([(h * width + 2 * r) * n + t, (t * width + 2 * r + 1) * n + h])
    features, labels, owners = [], [], []
    for begin in range(0, len(entities), batch_size):
        e, rel = entities[begin : begin + batch_size], relations[begin : begin + batch_size]
        scores, ids = filtered_top_k(model, facts, e, rel, k=k)
        keys = (e.unsqueeze(1) * width + rel.unsqueeze(1)) * n + ids
        label = torch.isin(keys, truth) & (ids >= 0)
        x = candidate_features(scores, *roles(facts, e, rel, ids))
        valid_mask = torch.isfinite(scores)
        features.append(x[valid_mask])
        labels.append(label[valid_mask].float())
        query = torch.arange(begin, begin + len(e)).unsqueeze(1).expand_as(scores)
        owners.append(query[valid_mask])  # a sample's query decides its half (fitting / held out)
    x_all, y_all = torch.cat(features), torch.cat(labels)
    if len(y_all) == 0 or float(y_all.sum()) == 0:
        logger.warning("no validation fact was among the top-%d predictions: inferred facts get confidence 0", k)
        return Calibration.uninformed(k=k)
    held_out = torch.cat(owners) % 2 == 1  # the samples of one query stay together
    fit_x, fit_y = x_all[~held_out], y_all[~held_out]
    mean, std = fit_x.mean(0), fit_x.std(0).clamp_min(1e-6)
    weights = torch.zeros(len(FEATURES), requires_grad=True)
    bias = torch.zeros(1, requires_grad=True)
    optimiser = torch.optim.LBFGS([weights, bias], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")
    z = (fit_x - mean) / std

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ weights + bias, fit_y)
        loss = loss + 1e-4 * weights.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    w, b = weights.detach(), float(bias.detach())
    test_x, test_y = x_all[held_out], y_all[held_out]
    probabilities = torch.sigmoid(((test_x - mean) / std) @ w + b)
    calibration = Calibration(
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
        weights=tuple(w.tolist()),
        bias=b,
        k=k,
        queries=len(entities),
        samples=len(fit_y),
        held_out_samples=len(test_y),
        positive_rate=float(y_all.mean()),
        ece=_ece(probabilities, test_y) if len(test_y) else None,
        brier=float((probabilities - test_y).pow(2).mean()) if len(test_y) else None,
    )
    logger.info(
        "calibrated on %d queries (%d samples, %.1f%% positive): held-out ECE %s, Brier %s",
        calibration.queries,
        calibration.samples + calibration.held_out_samples,
        100 * calibration.positive_rate,
        f"{calibration.ece:.3f}" if calibration.ece is not None else "-",
        f"{calibration.brier:.3f}" if calibration.brier is not None else "-",
    )
    return calibration
