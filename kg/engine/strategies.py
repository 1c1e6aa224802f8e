"""Lifelong strategies behind one interface, chosen by name: ``retrain``, ``finetune``, ``lkge``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from evergraph.kg.engine.autoencoder import (
    NeighbourhoodGraph,
    reconstruct_batch_relations,
    sample_entity_reconstruction,
    transfer_embeddings,
)
from evergraph.kg.engine.config import RunConfig
from evergraph.kg.engine.losses import negative_sampling_term
from evergraph.kg.engine.model import KGEModel, doubled_triples
from evergraph.kg.engine.resolver import Registry
from evergraph.kg.engine.snapshot import Snapshot, retained
from evergraph.kg.engine.sparse import add_to_touched_rows
from evergraph.kg.engine.unlearning import trained_removals, unlearn

logger = logging.getLogger(__name__)


class SnapshotSource(Protocol):
    """What a strategy needs of the growing graph (``evergraph.kg.engine.ingest.GrowingKG`` is one)."""

    snapshots: list[Snapshot]

    def train_facts(self, upto: int) -> torch.Tensor: ...

    def retired_entities(self, upto: int) -> torch.Tensor: ...


@dataclass
class SnapshotContext:
    """The snapshot being learned: ``index`` into ``kg.snapshots``."""

    kg: SnapshotSource
    index: int
    device: torch.device
    generator: torch.Generator
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def snapshot(self) -> Snapshot:
        return self.kg.snapshots[self.index]


class Strategy:
    """How a model moves from one snapshot to the next.

    ``prepare`` returns the model to train on snapshot ``ctx.index`` (grown, re-initialised or transferred),
    ``training_triples`` the base-id facts it trains on, ``extra_loss`` anything added to the link-prediction
    loss of a batch, and ``finish`` runs once the snapshot's training is done. ``state_dict`` holds what must
    survive a restart.
    """

    name: str = ""

    def __init__(self, config: RunConfig) -> None:
        self.config = config

    def new_model(self, ctx: SnapshotContext) -> KGEModel:
        snap = ctx.snapshot
        return KGEModel(
            interaction=self.config.model.name,
            num_entities=snap.num_entities,
            num_relations=snap.num_relations,
            dim=self.config.model.dim,
            init_scale=self.config.model.init_scale,
            generator=ctx.generator,
        ).to(ctx.device)

    def prepare(self, model: KGEModel | None, ctx: SnapshotContext) -> KGEModel:
        if model is None:
            return self.new_model(ctx)
        model.grow(
            num_entities=ctx.snapshot.num_entities,
            num_relations=ctx.snapshot.num_relations,
            generator=ctx.generator,
        )
        return model

    def training_triples(self, ctx: SnapshotContext) -> torch.Tensor:
        return ctx.snapshot.train

    def extra_loss(self, model: KGEModel, batch: torch.Tensor, ctx: SnapshotContext) -> torch.Tensor | None:
        return None

    def add_gradients(self, model: KGEModel) -> None:
        """Add the gradients of terms whose gradient is known in closed form (after ``backward``)."""
        return None

    def finish(self, model: KGEModel, ctx: SnapshotContext) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


@STRATEGIES.register("retrain")
class Retrain(Strategy):
    """From scratch on all facts so far, every snapshot: the cost/quality reference."""

    name = "retrain"

    def prepare(self, model: KGEModel | None, ctx: SnapshotContext) -> KGEModel:
        return self.new_model(ctx)

    def training_triples(self, ctx: SnapshotContext) -> torch.Tensor:
        return ctx.kg.train_facts(ctx.index)


@STRATEGIES.register("finetune")
class Finetune(Strategy):
    """Continue on the new facts only, nothing against forgetting (new rows random): the lower reference."""

    name = "finetune"


@STRATEGIES.register("lkge")
class LKGE(Strategy):
    """LKGE (Cui et al., AAAI 2023): train on new facts with a masked-autoencoder reconstruction loss,
    initialise new entities/relations by transfer from known neighbours, and regularise old embeddings in
    proportion to how much each has been learned.

    Loss of a batch = link prediction
      + ``reconstruction_weight`` * (mean ||e - MAE(e)||^2 over sampled batch entities
                                    + mean ||r - MAE(r)||^2 over the batch's relations)
      + ``regularization_weight`` * sum_x w_x ||x - x_old||^2 over old entities and relations
      + ``replay_weight`` * (negative half of the link-prediction loss for replayed old facts, their queries
                             frozen, against new entities; :meth:`_replay_loss`, our addition to the paper),
    where ``w_x`` is the number of training facts ``x`` has been trained on in earlier snapshots, divided by
    its mean (so the weight's scale does not depend on the dataset size).

    The autoencoder terms only ever gather the batch's rows (its entities, relations and sampled neighbours).
    With ``train.optimizer: sparse_adam`` the regulariser is applied **lazily to the rows a step touches**
    (:meth:`add_gradients`), so a step costs what its batch costs, whatever the size of the tables; with
    ``adam`` (dense) it pulls every old row at every step.
    """

    name = "lkge"

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.old_entity: torch.Tensor | None = None
        self.old_relation: torch.Tensor | None = None
        self.entity_weight: torch.Tensor | None = None  # learned amount, raw counts
        self.relation_weight: torch.Tensor | None = None
        self._graph: NeighbourhoodGraph | None = None
        self._reg: tuple[torch.Tensor, torch.Tensor] | None = None
        self._replay: tuple[torch.Tensor, int, int] | None = None  # old facts (model ids), first new entity, end

    def prepare(self, model: KGEModel | None, ctx: SnapshotContext) -> KGEModel:
        cfg = self.config.lkge
        snap = ctx.snapshot
        old_entities = None if model is None else model.num_entities
        if model is not None:
            self._unlearn(model, ctx)  # before transfer: new entities must not inherit retracted knowledge
        if model is None:
            model = self.new_model(ctx)
        elif cfg.transfer:
            ctx.info["transfer"] = transfer_embeddings(
                model,
                triples=ctx.kg.train_facts(ctx.index),
                num_entities=snap.num_entities,
                num_relations=snap.num_relations,
                rounds=cfg.transfer_rounds,
                generator=ctx.generator,
            )
            logger.info("snapshot %d transfer: %s", ctx.index, ctx.info["transfer"])
        else:
            model = super().prepare(model, ctx)
        self._graph = NeighbourhoodGraph.from_triples(ctx.kg.train_facts(ctx.index), num_entities=snap.num_entities).to(
            ctx.device
        )
        self._reg = None
        self._replay = self._replay_facts(ctx, old_entities=old_entities)
        if self.old_entity is not None and self.old_relation is not None:
            self.old_entity, self.old_relation = self.old_entity.to(ctx.device), self.old_relation.to(ctx.device)
        if self.old_entity is not None and self.entity_weight is not None and self.relation_weight is not None:
            ew, rw = self.entity_weight.to(ctx.device), self.relation_weight.to(ctx.device)
            self._reg = (ew / ew[ew > 0].mean().clamp(min=1e-12), rw / rw[rw > 0].mean().clamp(min=1e-12))
        return model

    def _replay_facts(self, ctx: SnapshotContext, *, old_entities: int | None) -> tuple[torch.Tensor, int, int] | None:
        """The retained facts among old entities (both directions) whose queries meet the snapshot's new entities
        as negatives (:meth:`_replay_loss`); ``None`` when the snapshot adds no entity or replay is off."""
        new_entities = ctx.snapshot.num_entities
        if self.config.lkge.replay_weight <= 0 or old_entities is None or new_entities <= old_entities:
            return None
        facts = ctx.kg.train_facts(ctx.index)
        facts = facts[(facts[:, 0] < old_entities) & (facts[:, 2] < old_entities)]
        if not len(facts):
            return None
        return doubled_triples(facts).to(ctx.device), old_entities, new_entities

    def _replay_loss(self, model: KGEModel, ctx: SnapshotContext, *, rows: int) -> torch.Tensor:
        """Old facts' queries, frozen, against new entities as negatives: the negative half of the link-prediction
        loss (self-adversarial), with gradients into the new entities' rows only; ``replay_share`` times ``rows``
        (the batch's) facts a step.

        Training a snapshot on its new facts draws negatives from all entities, so nothing keeps a new entity
        from landing near the answer of an *old* query (a model that trains on everything, ``retrain``, sees
        those pairs as negatives). When every entity competes (the ``all-entities`` protocol; the served model's
        top-k), such new entities outrank old answers; this term shows them the old queries."""
        assert self._replay is not None
        facts, first, end = self._replay
        cfg = self.config.lkge
        train = self.config.train
        size = max(1, round(cfg.replay_share * rows))
        picked = facts[torch.randint(len(facts), (size,), generator=ctx.generator).to(facts.device)]
        negatives = (
            torch.randint(end - first, (len(picked), train.num_negatives), generator=ctx.generator).to(facts.device)
            + first
        )
        with torch.no_grad():
            query = model.interaction.query(model.entity[picked[:, 0]], model.relation[picked[:, 1]])
        scores = model.interaction.score_query(query.unsqueeze(1), model.entity_rows(negatives))
        term = negative_sampling_term(
            scores, metric=model.interaction.metric, margin=train.margin, temperature=train.adversarial_temperature
        )
        return term / 2

    def _unlearn(self, model: KGEModel, ctx: SnapshotContext) -> None:
        """Forget the facts this snapshot retracts (:mod:`evergraph.kg.engine.unlearning`) and stop counting them
        as learned, so the regulariser holds the embeddings where unlearning left them."""
        cfg = self.config.lkge.unlearning
        snap = ctx.snapshot
        if ctx.index == 0 or not len(snap.removed) or not cfg.enabled:
            return
        kg = ctx.kg
        n, m = model.num_entities, model.num_relations
        forget = trained_removals(snap.removed, kg.train_facts(ctx.index - 1))
        retired = kg.retired_entities(ctx.index)  # newly retired only: earlier ones were reset when they retired
        retired = retired[(retired < n) & ~torch.isin(retired, kg.retired_entities(ctx.index - 1))]
        retain = kg.train_facts(ctx.index)
        retain = retain[(retain[:, 0] < n) & (retain[:, 2] < n) & (retain[:, 1] < m)]
        unseen = torch.cat([retained(kg.snapshots, index=j, upto=ctx.index, split="valid") for j in range(ctx.index)])
        unseen = unseen[torch.randperm(len(unseen), generator=ctx.generator)[: cfg.unseen_samples]]
        outcome = unlearn(
            model=model,
            forget=forget,
            retain=retain,
            unseen=unseen,
            retired=retired,
            steps=cfg.steps,
            lr=cfg.lr,
            retain_samples=cfg.retain_samples,
            negatives=cfg.negatives,
            generator=ctx.generator,
            stop_share=cfg.stop_share,
        )
        ctx.info["unlearning"] = outcome.to_dict()
        with torch.no_grad():
            self.old_entity = model.entity.detach().clone()
            self.old_relation = model.relation.detach().clone()
            if self.entity_weight is not None and self.relation_weight is not None and len(forget):
                ent = torch.bincount(forget[:, [0, 2]].reshape(-1), minlength=len(self.entity_weight)).float()
                rel = torch.bincount(forget[:, 1], minlength=len(self.relation_weight) // 2).float()
                self.entity_weight = (self.entity_weight - ent[: len(self.entity_weight)]).clamp_min(0)
                self.relation_weight = (self.relation_weight - rel.repeat_interleave(2)).clamp_min(0)
            if self.entity_weight is not None and len(retired):
                self.entity_weight[retired.cpu()] = 0

    def extra_loss(self, model: KGEModel, batch: torch.Tensor, ctx: SnapshotContext) -> torch.Tensor | None:
        cfg = self.config.lkge
        loss = torch.zeros((), device=batch.device)
        if cfg.reconstruction_weight > 0 and self._graph is not None:
            loss = loss + cfg.reconstruction_weight * self._reconstruction_loss(model, batch, ctx)
        if self._replay is not None:
            loss = loss + cfg.replay_weight * self._replay_loss(model, ctx, rows=len(batch))
        return loss

    @torch.no_grad()
    def add_gradients(self, model: KGEModel) -> None:
        """The regulariser's gradient, ``2 * weight * w_x * (x - x_old)``, added in place: the same as
        back-propagating :meth:`regularization_loss`, without building its graph every step.

        Dense gradients (``optimizer: adam``) get it on every old row. Sparse ones (``sparse_adam``) get it
        **lazily, on the rows the step touched only** (those in the gradient: the batch's entities and
        relations, its negatives, the autoencoder's sampled nodes and neighbours): a row the step does not touch
        does not move under the lazy optimizer either, so its drift ``x - x_old`` waits, unchanged, for the next
        step that touches it (:func:`evergraph.kg.engine.sparse.add_to_touched_rows`)."""
        weight = self.config.lkge.regularization_weight
        if weight <= 0 or self._reg is None or self.old_entity is None or self.old_relation is None:
            return
        pairs = ((model.entity, self.old_entity, self._reg[0]), (model.relation, self.old_relation, self._reg[1]))
        for param, old, w in pairs:
            n = old.shape[0]
            if param.grad is not None and param.grad.is_sparse:
                param.grad = add_to_touched_rows(param.grad, param, old, w, scale=2 * weight)
                continue
            if param.grad is None:
                param.grad = torch.zeros_like(param)
            param.grad[:n].addcmul_(param[:n] - old, (2 * weight) * w.unsqueeze(1))

    def _reconstruction_loss(self, model: KGEModel, batch: torch.Tensor, ctx: SnapshotContext) -> torch.Tensor:
        cfg = self.config.lkge
        assert self._graph is not None
        # batches come in random order and hold every fact in both directions, so the tails of their first
        # rows are a random sample of the batch's entities
        nodes = batch[: cfg.mae_entities_per_batch, 2]
        nodes, rebuilt = sample_entity_reconstruction(
            model, self._graph, nodes, neighbours=cfg.mae_neighbours, generator=ctx.generator
        )
        loss = (model.entity_rows(nodes) - rebuilt).pow(2).sum(1).mean()
        if cfg.reconstruct_relations:
            # from the batch's own rows, for the batch's relations only: cost and gradient follow the batch
            heads, tails = model.entity_rows(batch[:, 0]), model.entity_rows(batch[:, 2])
            seen, rebuilt_r = reconstruct_batch_relations(heads, batch[:, 1], tails, model.interaction)
            loss = loss + model.interaction.relation_gap(model.relation_rows(seen), rebuilt_r).mean()
        return loss

    def regularization_loss(self, model: KGEModel) -> torch.Tensor:
        """``sum_x w_x ||x - x_old||^2`` (unweighted by ``regularization_weight``); training adds its gradient
        directly (:meth:`add_gradients`)."""
        assert self._reg is not None and self.old_entity is not None and self.old_relation is not None
        ew, rw = self._reg
        n, m = self.old_entity.shape[0], self.old_relation.shape[0]
        drift_e = (model.entity[:n] - self.old_entity).pow(2).sum(1)
        drift_r = (model.relation[:m] - self.old_relation).pow(2).sum(1)
        return (ew * drift_e).sum() + (rw * drift_r).sum()

    @torch.no_grad()
    def finish(self, model: KGEModel, ctx: SnapshotContext) -> None:
        """Remember the embeddings just learned and add this snapshot's training counts to the weights."""
        self.old_entity = model.entity.detach().clone()
        self.old_relation = model.relation.detach().clone()
        facts = self.training_triples(ctx)
        ent = torch.bincount(facts[:, [0, 2]].reshape(-1), minlength=model.num_entities).float()
        rel = torch.bincount(facts[:, 1], minlength=model.num_relations).float().repeat_interleave(2)
        self.entity_weight = _grow(self.entity_weight, ent)
        self.relation_weight = _grow(self.relation_weight, rel)

    def state_dict(self) -> dict[str, Any]:
        return {
            "old_entity": self.old_entity,
            "old_relation": self.old_relation,
            "entity_weight": self.entity_weight,
            "relation_weight": self.relation_weight,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.old_entity = state.get("old_entity")
        self.old_relation = state.get("old_relation")
        self.entity_weight = state.get("entity_weight")
        self.relation_weight = state.get("relation_weight")


def _grow(weight: torch.Tensor | None, add: torch.Tensor) -> torch.Tensor:
    add = add.cpu()
    if weight is None:
        return add
    out = add.clone()
    out[: weight.shape[0]] += weight
    return out


def get_strategy(config: RunConfig) -> Strategy:
    """The strategy named by ``config.strategy``."""
    return STRATEGIES.get(config.strategy)(config)
