"""Unlearning retracted facts (the E2URec idea, Wang et al. 2024, carried over to KG embeddings).

After a retraction the model should not remember the retracted facts better than a model that never saw them,
while keeping everything else. Retraining on the retained facts (the ``retrain`` strategy) is exact but costs a
full training run; :func:`unlearn` is a short phase on the affected rows only:

- **forget**: each retracted fact the model trained on is pushed away until its distance reaches the distance a
  *never seen* true fact gets. The frozen model's distances on held-out facts (validation facts it never trained
  on) give that distribution; the retracted facts are matched to it quantile by quantile (the fact the model knew
  best gets the smallest target), and only a fact closer than its target is moved (a one-sided hinge), so nothing
  is pushed far below what an unseen fact gets.
- **remember**: a frozen copy of the model is the teacher on the retained facts around the affected entities:
  their distances, and those of corrupted versions of them, are kept where the teacher had them.
- **retire**: an entity whose facts are all retracted gets fresh random embeddings, the state a model that never
  saw it would give it.

Cost: at most ``steps`` full-batch Adam steps over the retracted facts and a sample of ``retain`` neighbouring
facts, on a copy of only the embedding rows they touch (the rest of the model does not move and costs nothing).
The phase stops early (``stop_share`` > 0) as soon as at most ``stop_share`` of the retracted facts are still
closer than their targets, or their mean distance has reached the targets' mean (the facts as a whole now sit
where unseen facts sit: pushing on until nearly every fact is past its own target overshot the mean by a step's
worth, which on ENTITY ranked them well below unseen facts), or once the forget loss has not improved for
:data:`STOP_PATIENCE` steps (the anchors then pull the facts back; the rows of the best step are kept). On the
example graph that happens after 9-11 of the 100 steps (mean distance within 0.05 of the targets' mean); further
steps only let the forgotten facts drift back (filtered MRR on them 0.27-0.32 after 100).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch

from evergraph.kg.engine.model import KGEModel, doubled_triples
from evergraph.kg.engine.snapshot import fact_keys

logger = logging.getLogger(__name__)

__all__ = ["UnlearningOutcome", "unlearn"]

STOP_PATIENCE = 3
"""Steps without a lower forget loss after which the phase stops (with ``stop_share`` > 0) and keeps its best rows."""


@dataclass(frozen=True)
class UnlearningOutcome:
    """What one unlearning phase did (kept in the snapshot's metrics under ``unlearning``)."""

    forgotten: int
    retired: int
    retained_sampled: int
    steps: int
    seconds: float
    forget_distance_before: float
    forget_distance_after: float
    target_distance: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "forgotten": self.forgotten,
            "retired": self.retired,
            "retained_sampled": self.retained_sampled,
            "steps": self.steps,
            "seconds": round(self.seconds, 3),
            "forget_distance_before": round(self.forget_distance_before, 4),
            "forget_distance_after": round(self.forget_distance_after, 4),
            "target_distance": round(self.target_distance, 4),
        }


def _sample(rows: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    if rows.shape[0] <= n:
        return rows
    return rows[torch.randperm(rows.shape[0], generator=generator)[:n]]


@torch.no_grad()
def _targets(teacher: KGEModel, forget: torch.Tensor, unseen: torch.Tensor) -> torch.Tensor:
    """Per retracted (model-id) triple, the distance an unseen fact at the same quantile gets."""
    before = teacher.distance(forget)
    reference = torch.sort(teacher.distance(unseen)).values
    order = torch.argsort(before)
    quantiles = (torch.arange(len(forget), dtype=torch.float64) + 0.5) / max(len(forget), 1)
    positions = (quantiles * len(reference)).long().clamp(max=len(reference) - 1)
    targets = torch.empty_like(before)
    targets[order] = reference[positions].to(before)
    return targets


def unlearn(
    *,
    model: KGEModel,
    forget: torch.Tensor,
    retain: torch.Tensor,
    unseen: torch.Tensor,
    retired: torch.Tensor,
    steps: int,
    lr: float,
    retain_samples: int,
    negatives: int,
    generator: torch.Generator,
    stop_share: float = 0.0,
) -> UnlearningOutcome:
    """Make ``model`` (in place) forget ``forget`` (base-id facts it trained on, now retracted) and the entities
    ``retired``, keeping the retained facts ``retain`` (base ids) as a frozen copy of itself scored them.
    ``unseen`` are true facts it never trained on (validation facts), whose distances are the forget targets.
    Stops before ``steps`` (``stop_share`` > 0) once at most ``stop_share`` of the retracted facts are closer than
    their targets or the forget loss stops improving."""
    started = time.perf_counter()
    device = model.entity.device
    retired = retired.to(device)
    if len(retired):
        with torch.no_grad():
            model.entity.data[retired] = model.random_entities(len(retired), generator=generator).to(model.entity)
    if len(forget) and len(retired):  # facts of retired entities are forgotten with the entity
        touches = torch.isin(forget[:, 0], retired.cpu()) | torch.isin(forget[:, 2], retired.cpu())
        forget = forget[~touches]
    if not len(forget) or not len(unseen):
        seconds = time.perf_counter() - started
        return UnlearningOutcome(0, len(retired), 0, 0, seconds, 0.0, 0.0, 0.0)
    forget_m = doubled_triples(forget).to(device)
    with torch.no_grad():  # the frozen model's distances: the teacher, read once before anything moves
        targets = _targets(model, forget_m, doubled_triples(unseen).to(device))
    # the retained facts around the affected entities, and corrupted versions of them, keep the teacher's distances
    affected = torch.unique(torch.cat([forget[:, 0], forget[:, 2]]))
    near = torch.isin(retain[:, 0], affected) | torch.isin(retain[:, 2], affected)
    kept = _sample(retain[near], retain_samples, generator)
    kept_m = doubled_triples(kept).to(device) if len(kept) else torch.empty((0, 3), dtype=torch.long, device=device)
    corrupt = kept_m.repeat(negatives, 1)
    if len(corrupt):
        corrupt[:, 2] = torch.randint(model.num_entities, (len(corrupt),), generator=generator).to(device)
    anchors = torch.cat([kept_m, corrupt])
    with torch.no_grad():
        anchor_targets = model.distance(anchors) if len(anchors) else torch.empty(0, device=device)
        before = float(model.distance(forget_m).mean())
    # only the rows these triples touch move: optimise a copy of them (cheap), then write them back
    both = torch.cat([forget_m, anchors])
    entity_ids = torch.unique(torch.cat([both[:, 0], both[:, 2]]))
    relation_ids = torch.unique(both[:, 1])
    entity_at = torch.full((model.num_entities,), -1, dtype=torch.long, device=device)
    entity_at[entity_ids] = torch.arange(len(entity_ids), device=device)
    relation_at = torch.full((model.relation.shape[0],), -1, dtype=torch.long, device=device)
    relation_at[relation_ids] = torch.arange(len(relation_ids), device=device)
    entities = model.entity.detach()[entity_ids].clone().requires_grad_(True)
    relations = model.relation.detach()[relation_ids].clone().requires_grad_(True)

    def local(triples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return entity_at[triples[:, 0]], relation_at[triples[:, 1]], entity_at[triples[:, 2]]

    forget_local, anchor_local = local(forget_m), local(anchors)

    def distance(rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        h, r, t = rows  # index_select: its backward is a fast index_add (advanced indexing's is serial)
        return -model.interaction.score(
            entities.index_select(0, h), relations.index_select(0, r), entities.index_select(0, t)
        )

    optimizer = torch.optim.Adam([entities, relations], lr=lr)
    taken, stale, best, best_rows = 0, 0, float("inf"), (entities.detach().clone(), relations.detach().clone())
    for _ in range(steps):
        gap = targets - distance(forget_local)
        hinge = gap.clamp_min(0).pow(2).mean()
        if stop_share > 0:
            if float((gap > 0).float().mean()) <= stop_share or float(gap.mean()) <= 0:
                break  # the forget targets are reached, or the facts as a whole sit where unseen ones do
            if float(hinge.detach()) < best * (1 - 1e-3):
                best, stale, best_rows = (
                    float(hinge.detach()),
                    0,
                    (entities.detach().clone(), relations.detach().clone()),
                )
            else:
                stale += 1
            if stale >= STOP_PATIENCE:  # the anchors now pull the facts back: keep the rows of the best step
                with torch.no_grad():
                    entities.copy_(best_rows[0])
                    relations.copy_(best_rows[1])
                break
        taken += 1
        loss = hinge
        if len(anchors):
            loss = loss + (distance(anchor_local) - anchor_targets).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        model.entity.data[entity_ids] = entities.detach()
        model.relation.data[relation_ids] = relations.detach()
        after = float(model.distance(forget_m).mean())
    outcome = UnlearningOutcome(
        forgotten=len(forget),
        retired=len(retired),
        retained_sampled=len(kept),
        steps=taken,
        seconds=time.perf_counter() - started,
        forget_distance_before=before,
        forget_distance_after=after,
        target_distance=float(targets.mean()),
    )
    logger.info("unlearning: %s", outcome.to_dict())
    return outcome


def trained_removals(removed: torch.Tensor, trained: torch.Tensor) -> torch.Tensor:
    """The retracted facts ``removed`` the model trained on (in ``trained``); others need no unlearning."""
    if not len(removed) or not len(trained):
        return removed[:0]
    return removed[torch.isin(fact_keys(removed), fact_keys(trained))]
