"""Evergraph's core library: growing knowledge graphs, lifelong embeddings, honest evaluation.

The public API is re-exported here; everything else is private to its module.
"""

from kg.config import LKGEConfig, ModelConfig, RunConfig, TrainConfig
from kg.errors import CheckpointError, EvergraphError, Problem, SnapshotError, UnknownComponentError
from kg.interactions import INTERACTIONS, Interaction, get_interaction
from kg.model import KGEModel
from kg.snapshot import IngestReport, Snapshot
from kg.strategies import STRATEGIES, Strategy, get_strategy

__all__ = [
    "INTERACTIONS",
    "STRATEGIES",
    "CheckpointError",
    "EvergraphError",
    "IngestReport",
    "Interaction",
    "KGEModel",
    "LKGEConfig",
    "ModelConfig",
    "Problem",
    "RunConfig",
    "Snapshot",
    "SnapshotError",
    "Strategy",
    "TrainConfig",
    "UnknownComponentError",
    "get_interaction",
    "get_strategy",
]
