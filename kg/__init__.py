"""Evergraph's core library: growing knowledge graphs, lifelong embeddings, honest evaluation.

The public API is re-exported here; everything else is private to its module.
"""

from kg.bundle import Bundle, BundleError, load_champion, switch_pointer, write_bundle
from kg.client import KnowledgeClient, KnowledgeClientError
from kg.config import LKGEConfig, ModelConfig, RunConfig, TrainConfig
from kg.errors import CheckpointError, EvergraphError, Problem, SnapshotError, UnknownComponentError
from kg.evaluation import PROTOCOLS, RankingMetrics, StreamResult, evaluate_stream
from kg.example import write_example_dataset
from kg.guide import GuideConfig
from kg.home import EvergraphHome
from kg.ingest import GrowingKG
from kg.interactions import INTERACTIONS, Interaction, get_interaction
from kg.knowledge import Knowledge, LLMNotConfiguredError
from kg.lifelong import LifelongRun
from kg.linking import Linker
from kg.llm import ChatConfig, LLMError
from kg.model import KGEModel
from kg.schemas import Answer, Fact, GuideResult
from kg.snapshot import IngestReport, Snapshot
from kg.strategies import STRATEGIES, Strategy, get_strategy
from kg.vocab import Vocabulary

__all__ = [
    "INTERACTIONS",
    "PROTOCOLS",
    "GrowingKG",
    "LifelongRun",
    "RankingMetrics",
    "StreamResult",
    "Vocabulary",
    "evaluate_stream",
    "write_example_dataset",
    "Bundle",
    "BundleError",
    "EvergraphHome",
    "load_champion",
    "switch_pointer",
    "write_bundle",
    "Answer",
    "ChatConfig",
    "Fact",
    "GuideConfig",
    "GuideResult",
    "Knowledge",
    "KnowledgeClient",
    "KnowledgeClientError",
    "LLMError",
    "LLMNotConfiguredError",
    "Linker",
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
