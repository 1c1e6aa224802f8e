"""A lifelong run: ingest every snapshot, learn them in order with a strategy, evaluate after each.

Everything lands in one run directory ``OUT``::

    OUT/config.json                 the RunConfig (a different config for the same OUT is refused)
    OUT/vocab/entities.tsv          append-only vocabularies (``id<TAB>label``), as of the last finished snapshot
    OUT/vocab/relations.tsv
    OUT/checkpoints/snapshot-N.pt   model + strategy state after snapshot N (``weights_only`` loadable)
    OUT/checkpoints/in-progress.pt  periodic checkpoint inside the snapshot being trained
    OUT/metrics.json                one entry per finished snapshot

Starting the same command again with the same ``OUT`` resumes: finished snapshots are kept, a snapshot cut
short continues from its last periodic checkpoint.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from evergraph.kg.engine.atomic import save_torch, write_json
from evergraph.kg.engine.config import RunConfig
from evergraph.kg.engine.distributed import init_from_env
from evergraph.kg.engine.evaluation import PROTOCOLS, evaluate_split, evaluate_stream
from evergraph.kg.engine.events import events
from evergraph.kg.engine.ingest import GrowingKG, load_shared
from evergraph.kg.engine.interactions import get_interaction
from evergraph.kg.engine.model import KGEModel
from evergraph.kg.engine.run_files import (
    RunPaths,
    load_model_checkpoint,
    peak_rss_mb,
)
from evergraph.kg.engine.strategies import SnapshotContext, Strategy, get_strategy
from evergraph.kg.engine.training import resolve_device, train_snapshot
from evergraph.kg.engine.vocab import Vocabulary
from evergraph.kg.errors import CheckpointError

logger = logging.getLogger(__name__)


def _check_config(paths: RunPaths, config: RunConfig, data: Path) -> None:
    if not paths.config.exists():
        write_json(paths.config, {"data": str(data.resolve()), "checksum": config.checksum(), **config.model_dump()})
        return
    stored = json.loads(paths.config.read_text())
    if stored.get("checksum") != config.checksum():
        raise CheckpointError(
            f"{paths.out} holds a run made with a different configuration (strategy, model or training options "
            "differ); use a new --out, or repeat the original options to resume it"
        )


def _check_vocab(paths: RunPaths, kg: GrowingKG) -> None:
    for name, vocab in (("entities", kg.entities), ("relations", kg.relations)):
        file = paths.vocab / f"{name}.tsv"
        if not file.exists():
            continue
        saved = Vocabulary.load(file)
        if not saved.is_prefix_of(vocab):
            raise CheckpointError(
                f"{file}: the data no longer gives the ids this run stored (history is append-only); "
                "restore the original snapshots or start a new --out"
            )


def _save_vocab(paths: RunPaths, kg: GrowingKG, snapshot_index: int) -> None:
    snap = kg.snapshots[snapshot_index]
    Vocabulary(kg.entities.labels[: snap.num_entities]).save(paths.vocab / "entities.tsv")
    Vocabulary(kg.relations.labels[: snap.num_relations]).save(paths.vocab / "relations.tsv")


class LifelongRun:
    """One run directory; :meth:`run` learns every snapshot not finished yet."""

    def __init__(
        self,
        *,
        data: Path | str,
        out: Path | str,
        config: RunConfig,
        show_progress: bool = True,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    ) -> None:
        """``on_epoch(snapshot, record)`` (default: none) is called after every training epoch."""
        self.data = Path(data)
        self.paths = RunPaths(Path(out))
        self.config = config
        self.show_progress = show_progress
        self.on_epoch = on_epoch

    def _metrics(self) -> dict[str, Any]:
        if self.paths.metrics.exists():
            return json.loads(self.paths.metrics.read_text())
        return {
            "strategy": self.config.strategy,
            "model": self.config.model.name,
            "protocol": self.config.protocol,
            "snapshots": [],
        }

    def run(self, *, upto: int | None = None) -> dict[str, Any]:
        """Learn snapshots up to ``upto`` (all by default); returns the metrics dict (also in metrics.json)."""
        cfg = self.config
        # unknown names fail here, before any work, not after a snapshot of training
        strategy = get_strategy(cfg)
        get_interaction(cfg.model.name)
        PROTOCOLS[cfg.protocol]
        kg = load_shared(self.data, upto=upto)  # validates everything before anything is written
        group, device = init_from_env(resolve_device(cfg.train.device))  # a torchrun job: data parallel
        if group is not None and not group.is_main:  # rank 0 writes OUT; the others keep their own checkpoints
            self.paths = RunPaths(self.paths.rank_dir(group.rank))
        self.paths.out.mkdir(parents=True, exist_ok=True)
        _check_config(self.paths, cfg, self.data)
        metrics = self._metrics()
        done = metrics["snapshots"]
        for entry in done:
            if entry["snapshot"] < len(kg.snapshots):
                if entry["content_hash"] != kg.snapshots[entry["snapshot"]].content_hash:
                    raise CheckpointError(
                        f"snapshot {entry['snapshot']} in {self.data} changed since this run learned it "
                        "(history is append-only); restore it or start a new --out"
                    )
        _check_vocab(self.paths, kg)

        torch.manual_seed(cfg.train.seed)
        generator = torch.Generator().manual_seed(cfg.train.seed)
        model: KGEModel | None = None
        if done:
            model, state = load_model_checkpoint(self.paths.snapshot_checkpoint(len(done) - 1), device=device)
            strategy.load_state_dict(state["strategy"])
            generator.set_state(state["generator"])
            logger.info("resuming %s after snapshot %d", self.paths.out, len(done) - 1)

        for index in range(len(done), len(kg.snapshots)):
            model = self._learn(kg, index, model, strategy, device, generator, metrics)
        return metrics

    def _learn(
        self,
        kg: GrowingKG,
        index: int,
        model: KGEModel | None,
        strategy: Strategy,
        device: torch.device,
        generator: torch.Generator,
        metrics: dict[str, Any],
    ) -> KGEModel:
        cfg = self.config
        ctx = SnapshotContext(kg=kg, index=index, device=device, generator=generator)
        model = strategy.prepare(model, ctx)
        resume = None
        if self.paths.in_progress.exists():
            state = torch.load(self.paths.in_progress, map_location=device, weights_only=True)
            if state.get("snapshot") == index and state.get("checksum") == cfg.checksum():
                resume = state
            else:
                logger.warning("ignoring a stale %s", self.paths.in_progress)

        sample = cfg.evaluation.sample_for(kg.snapshots[index].num_entities)

        def validate(m: KGEModel) -> float:
            return evaluate_split(
                score_fn=m.score_fn(),
                snapshots=kg.snapshots,
                upto=index,
                target=index,
                protocol=cfg.protocol,
                split="valid",
                block_size=cfg.train.eval_block_size,
                sample=sample,
                candidate_score_fn=m.candidate_score_fn(),
            ).mrr

        def checkpoint(state: dict[str, Any]) -> None:
            save_torch(self.paths.in_progress, {**state, "snapshot": index, "checksum": cfg.checksum()})

        outcome = train_snapshot(
            model=model,
            strategy=strategy,
            ctx=ctx,
            config=cfg.train,
            validate=validate,
            checkpoint=checkpoint,
            resume=resume,
            show_progress=self.show_progress,
            on_epoch=None if self.on_epoch is None else (lambda record: self.on_epoch(index, record)),
        )
        strategy.finish(model, ctx)

        started = time.perf_counter()
        with torch.inference_mode():
            result = evaluate_stream(
                score_fn=model.score_fn(),
                snapshots=kg.snapshots,
                upto=index,
                protocol=cfg.protocol,
                block_size=cfg.train.eval_block_size,
                sample=sample,
                candidate_score_fn=model.candidate_score_fn(),
            )
        eval_seconds = time.perf_counter() - started

        snap = kg.snapshots[index]
        table = result.to_dict()
        entry = {
            "snapshot": index,
            "epochs": outcome.epochs,
            "best_epoch": outcome.best_epoch,
            "valid_mrr": outcome.best_valid_mrr,
            "train_seconds": round(outcome.seconds, 3),
            "eval_seconds": round(eval_seconds, 3),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "num_entities": snap.num_entities,
            "num_relations": snap.num_relations,
            "train_facts": int(strategy.training_triples(ctx).shape[0]),
            "content_hash": snap.content_hash,
            "ingest": snap.report.to_dict(),
            **({"transfer": ctx.info["transfer"]} if "transfer" in ctx.info else {}),
            "ranking": table["ranking"],
            "stream": table["stream"],
            **({"unlearning": ctx.info["unlearning"]} if "unlearning" in ctx.info else {}),
            **({"retracted": int(snap.removed.shape[0])} if len(snap.removed) else {}),
            "per_test_set": table["per_test_set"],
            "history": outcome.history,
        }
        save_torch(
            self.paths.snapshot_checkpoint(index),
            {
                "model": model.state_dict(),
                "model_name": cfg.model.name,
                "dim": cfg.model.dim,
                "strategy": strategy.state_dict(),
                "generator": generator.get_state(),
                "snapshot": index,
            },
        )
        _save_vocab(self.paths, kg, index)
        metrics["snapshots"].append(entry)
        write_json(self.paths.metrics, metrics)
        self.paths.in_progress.unlink(missing_ok=True)
        events.info(
            "snapshot %d learned: %d training facts, %d entities; %d epochs in %.1fs (best valid MRR %.3f at epoch "
            "%d); stream MRR %.3f",
            index,
            entry["train_facts"],
            snap.num_entities,
            outcome.epochs,
            outcome.seconds,
            outcome.best_valid_mrr,
            outcome.best_epoch,
            table["stream"]["mrr"],
        )
        return model
