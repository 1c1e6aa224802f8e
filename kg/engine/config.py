"""Configuration as pydantic models. Every field has a documented default, so ablations are one flag away."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from evergraph.kg.engine.evaluation import CandidateSample


def _known(value: str, names: list[str], *, kind: str) -> str:
    """``value`` (lower-cased) when it names a registered component; a ValueError listing the names otherwise."""
    if value.lower() not in names:
        raise ValueError(f"unknown {kind} {value!r}; choose one of: {', '.join(names)}")
    return value.lower()


def model_names() -> list[str]:
    """Registered interactions (``transe``, ``rotate``, ...): :data:`evergraph.kg.engine.interactions.INTERACTIONS`."""
    from evergraph.kg.engine.interactions import INTERACTIONS

    return INTERACTIONS.names()


def strategy_names() -> list[str]:
    """Registered strategies, from :data:`evergraph.kg.engine.strategies.STRATEGIES` (imports the training stack)."""
    from evergraph.kg.engine.strategies import STRATEGIES

    return STRATEGIES.names()


def protocol_names() -> list[str]:
    """Registered evaluation protocols, from :data:`evergraph.kg.engine.evaluation.PROTOCOLS`."""
    from evergraph.kg.engine.evaluation import PROTOCOLS

    return sorted(PROTOCOLS)


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Config):
    """The embedding model."""

    name: str = Field("transe", description="interaction, by name: transe | rotate | distmult | complex")
    dim: int = Field(200, gt=0, description="embedding dimension (RotatE and ComplEx store 2*dim floats per entity)")
    init_scale: float = Field(2.0, gt=0, description="random entity/relation vectors start with norms near this")

    @field_validator("name")
    @classmethod
    def _known_model(cls, value: str) -> str:
        return _known(value, model_names(), kind="model")


class TrainConfig(_Config):
    """Mini-batch training with negative sampling, Adam and early stopping on validation MRR."""

    lr: float = Field(3e-3, gt=0, description="Adam learning rate")
    optimizer: Literal["adam", "sparse_adam"] = Field(
        "adam",
        description="adam: dense Adam over the whole entity and relation tables (every row, every step); "
        "sparse_adam: a step touches only the rows its batch uses (sparse row gradients, lazy Adam with "
        "torch.optim.SparseAdam's update, the LKGE regulariser on those rows only), so its cost follows the batch, "
        "not the table "
        "(evergraph.kg.engine.sparse; bench/RESULTS.md, section sparse, has the measured cost and quality)",
    )
    batch_size: int = Field(2048, gt=0, description="positive triples per batch (inverse triples included)")
    min_batches: int = Field(
        10, gt=0, description="small snapshots get smaller batches so an epoch has at least this many steps"
    )
    num_negatives: int = Field(10, gt=0, description="corrupted tails per positive")
    margin: float = Field(4.0, gt=0, description="gamma in the loss -log s(gamma - d+) - sum w log s(d- - gamma)")
    adversarial_temperature: float = Field(
        1.0, ge=0, description="self-adversarial weighting of negatives (0 = uniform weights)"
    )
    max_epochs: int = Field(200, gt=0, description="epochs per snapshot at most")
    eval_every: int = Field(5, gt=0, description="validate (filtered MRR on valid.txt) every N epochs")
    patience: int = Field(3, ge=1, description="stop after this many validations without improvement")
    min_delta: float = Field(
        1e-3,
        ge=0,
        description="a validation MRR gain smaller than this is no improvement for patience (the best weights "
        "are still kept); stops the long slow creep at the end of a snapshot",
    )
    checkpoint_every: int = Field(10, gt=0, description="write a resumable checkpoint every N epochs")
    seed: int = Field(0, description="seeds torch; CPU runs with the same seed are repeatable")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = cuda when available, else cpu")
    eval_block_size: int = Field(2048, gt=0, description="queries scored at once during evaluation")


class UnlearningConfig(_Config):
    """Unlearning retracted facts (:mod:`evergraph.kg.engine.unlearning`), run when a snapshot retracts facts."""

    enabled: bool = Field(True, description="unlearn retracted facts (False: only stop training on them)")
    steps: int = Field(100, gt=0, description="at most this many full-batch Adam steps in the unlearning phase")
    stop_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description="stop the phase once at most this share of the retracted facts is still closer than its target "
        "distance, once their mean distance reaches the targets' mean, or once that loss stops improving (0: always "
        "run every step); on the example graph it stops after 9-11 of the 100 steps",
    )
    lr: float = Field(1e-2, gt=0, description="Adam learning rate of the unlearning phase")
    retain_samples: int = Field(
        5000,
        gt=0,
        description="retained facts around the affected entities kept at the frozen copy's distances (the phase's "
        "cost grows with it: on ENTITY's 5% retraction 20000 took 16 s at dim 32, 5000 took 2 s; bench/RESULTS.md)",
    )
    negatives: int = Field(2, ge=0, description="corrupted versions of each retained fact also kept at its distances")
    unseen_samples: int = Field(
        20000, gt=0, description="held-out (validation) facts whose distances give the targets of retracted facts"
    )


class LKGEConfig(_Config):
    """The LKGE strategy (Cui et al., AAAI 2023): masked autoencoder, transfer and regularisation."""

    reconstruction_weight: float = Field(0.001, ge=0, description="weight of the masked-autoencoder loss")
    regularization_weight: float = Field(
        1e-5,
        ge=0,
        description="weight of the embedding regularisation (per step, against a mean batch loss; Adam rescales "
        "each coordinate, so small weights already hold old embeddings: 1e-2 froze them and stopped new facts "
        "from being learned on FACT, see bench/RESULTS.md)",
    )
    transfer: bool = Field(True, description="initialise new entities/relations from known neighbours")
    reconstruct_relations: bool = Field(True, description="also reconstruct relations from their edges")
    mae_entities_per_batch: int = Field(
        256, gt=0, description="entities of a batch whose neighbourhood reconstruction is trained per step"
    )
    mae_neighbours: int = Field(8, gt=0, description="neighbours sampled (with replacement) per entity per step")
    transfer_rounds: int = Field(3, ge=1, description="hops new entities may be reached through other new ones")
    replay_weight: float = Field(
        1.0,
        ge=0,
        description="weight of the replay term: old facts' queries, frozen, against new entities as negatives, so "
        "new entities learn to stay out of old answers' way (every entity competes when the served model ranks); "
        "0 turns it off (the paper's LKGE)",
    )
    replay_share: float = Field(
        0.5, gt=0, le=4, description="old facts replayed per step, as a share of the batch's rows (cost follows it)"
    )
    unlearning: UnlearningConfig = Field(
        default_factory=lambda: UnlearningConfig(),
        description="what the strategy does when a snapshot retracts facts it trained on",
    )


class EvaluationConfig(_Config):
    """How test and validation queries are ranked: full filtered ranking up to a size, a fixed sample above it."""

    full_ranking_max_entities: int = Field(
        100_000,
        gt=0,
        description="rank against every entity while the evaluated snapshot has at most this many entities; above "
        "it, rank against a fixed random sample of candidates per query (OGB-wikikg2 style)",
    )
    sample_size: int = Field(
        1000, gt=0, description="candidates sampled per query above the threshold (ranks are then at most this + 1)"
    )
    sample_seed: int = Field(0, description="seeds the per-query candidate hash, so every sample is fixed")

    def sample_for(self, num_entities: int) -> CandidateSample | None:
        """``None`` (full ranking) up to :attr:`full_ranking_max_entities` entities, else the candidate sample."""
        from evergraph.kg.engine.evaluation import CandidateSample

        if num_entities <= self.full_ranking_max_entities:
            return None
        return CandidateSample(size=self.sample_size, seed=self.sample_seed)


class RunConfig(_Config):
    """One lifelong run over a stream of snapshots."""

    strategy: str = Field("lkge", description="retrain | finetune | lkge")
    protocol: str = Field("all-entities", description="evaluation protocol: all-entities | lkge-paper")
    model: ModelConfig = Field(default_factory=ModelConfig, description="the embedding model")
    train: TrainConfig = Field(default_factory=TrainConfig, description="training and early stopping")
    lkge: LKGEConfig = Field(default_factory=LKGEConfig, description="LKGE loss weights and switches")
    evaluation: EvaluationConfig = Field(
        default_factory=EvaluationConfig, description="full filtered ranking up to a size, sampled above it"
    )

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        return _known(value, strategy_names(), kind="strategy")

    @field_validator("protocol")
    @classmethod
    def _known_protocol(cls, value: str) -> str:
        return _known(value, protocol_names(), kind="protocol")

    def checksum(self) -> str:
        """sha256 of everything that changes results (the device does not, nor LKGE options for other strategies)."""
        data = self.model_dump()
        data["train"].pop("device")
        if self.strategy != "lkge":  # LKGE's options do not touch the other strategies
            data.pop("lkge")
        elif self.lkge.unlearning == UnlearningConfig():  # runs made before unlearning existed keep their checksum
            data["lkge"].pop("unlearning")
        if self.evaluation == EvaluationConfig():  # runs made before sampled evaluation existed keep theirs
            data.pop("evaluation")
        if self.train.optimizer == "adam":  # runs made before the sparse path existed keep their checksum
            data["train"].pop("optimizer")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
