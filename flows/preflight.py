"""Checks the ``evergraph run`` command makes in-process, before a Prefect API is started for the pipeline.

Starting Prefect takes seconds (minutes on a busy machine); bad data, an unknown strategy or model name must be
told at once, and must leave nothing behind (no ``runs/<lineage>/``, no registered version).
"""

from __future__ import annotations

import logging
from pathlib import Path

from evergraph.flows.params import PipelineConfig
from evergraph.kg.engine.ingest import load_shared
from evergraph.kg.engine.interactions import get_interaction
from evergraph.kg.engine.strategies import get_strategy

logger = logging.getLogger(__name__)

__all__ = ["check_before_run"]


def check_before_run(*, source: str | Path, strategy: str, model: str, config: PipelineConfig) -> int:
    """Validate what :func:`evergraph.flows.lifelong.lifelong_pipeline` would refuse, without Prefect: the
    strategy and model names (:class:`~evergraph.kg.errors.UnknownComponentError`) and every snapshot of
    ``source`` (a :class:`~evergraph.kg.errors.SnapshotError` naming file and line: an empty ``train.txt``, a
    NUL byte, ...). The snapshots stay loaded for the pipeline's steps in this process. Returns their count."""
    run_config = config.run_config(strategy=strategy, model=model)
    get_strategy(run_config)
    get_interaction(model)
    kg = load_shared(source)
    logger.debug("%s: %d valid snapshot(s)", source, len(kg.snapshots))
    return len(kg.snapshots)
