"""Evergraph's core library: growing knowledge graphs, lifelong embeddings, honest evaluation.

Layers, each a subpackage with one-way imports (engine <- store <- knowledge <- service):
:mod:`evergraph.kg.engine` (ingest, models, LKGE, training, evaluation), :mod:`evergraph.kg.store` (home,
index, facts, calibration, bundles), :mod:`evergraph.kg.knowledge` (linking, inference, the guide, the LLM
client) and :mod:`evergraph.kg.service` (serving, HTTP server, client, CLI). Errors live in
:mod:`evergraph.kg.errors`.

The public API is re-exported here **lazily**: a name's module is imported on first use, so
``from evergraph.kg import KnowledgeClient`` does not load the training stack (torch_geometric) or FAISS.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evergraph.kg.engine.config import LKGEConfig, ModelConfig, RunConfig, TrainConfig
    from evergraph.kg.engine.evaluation import PROTOCOLS, RankingMetrics, StreamResult, evaluate_stream
    from evergraph.kg.engine.example import write_example_dataset
    from evergraph.kg.engine.ingest import GrowingKG
    from evergraph.kg.engine.interactions import INTERACTIONS, Interaction, get_interaction
    from evergraph.kg.engine.lifelong import LifelongRun
    from evergraph.kg.engine.model import KGEModel
    from evergraph.kg.engine.snapshot import IngestReport, Snapshot
    from evergraph.kg.engine.strategies import STRATEGIES, Strategy, get_strategy
    from evergraph.kg.engine.vocab import Vocabulary
    from evergraph.kg.errors import CheckpointError, EvergraphError, Problem, SnapshotError, UnknownComponentError
    from evergraph.kg.knowledge.guide import GuideConfig
    from evergraph.kg.knowledge.knowledge import Knowledge, LLMNotConfiguredError
    from evergraph.kg.knowledge.linking import Linker
    from evergraph.kg.knowledge.llm import ChatConfig, LLMError
    from evergraph.kg.knowledge.schemas import Answer, Fact, GuideResult
    from evergraph.kg.service.client import KnowledgeClient, KnowledgeClientError
    from evergraph.kg.store.bundle import Bundle, BundleError, load_champion
    from evergraph.kg.store.bundle_writer import switch_pointer, write_bundle
    from evergraph.kg.store.home import EvergraphHome

_LAZY: dict[str, str] = {
    "LKGEConfig": "evergraph.kg.engine.config",
    "ModelConfig": "evergraph.kg.engine.config",
    "RunConfig": "evergraph.kg.engine.config",
    "TrainConfig": "evergraph.kg.engine.config",
    "PROTOCOLS": "evergraph.kg.engine.evaluation",
    "RankingMetrics": "evergraph.kg.engine.evaluation",
    "StreamResult": "evergraph.kg.engine.evaluation",
    "evaluate_stream": "evergraph.kg.engine.evaluation",
    "write_example_dataset": "evergraph.kg.engine.example",
    "GrowingKG": "evergraph.kg.engine.ingest",
    "INTERACTIONS": "evergraph.kg.engine.interactions",
    "Interaction": "evergraph.kg.engine.interactions",
    "get_interaction": "evergraph.kg.engine.interactions",
    "LifelongRun": "evergraph.kg.engine.lifelong",
    "KGEModel": "evergraph.kg.engine.model",
    "IngestReport": "evergraph.kg.engine.snapshot",
    "Snapshot": "evergraph.kg.engine.snapshot",
    "STRATEGIES": "evergraph.kg.engine.strategies",
    "Strategy": "evergraph.kg.engine.strategies",
    "get_strategy": "evergraph.kg.engine.strategies",
    "Vocabulary": "evergraph.kg.engine.vocab",
    "CheckpointError": "evergraph.kg.errors",
    "EvergraphError": "evergraph.kg.errors",
    "Problem": "evergraph.kg.errors",
    "SnapshotError": "evergraph.kg.errors",
    "UnknownComponentError": "evergraph.kg.errors",
    "GuideConfig": "evergraph.kg.knowledge.guide",
    "Knowledge": "evergraph.kg.knowledge.knowledge",
    "LLMNotConfiguredError": "evergraph.kg.errors",
    "Linker": "evergraph.kg.knowledge.linking",
    "ChatConfig": "evergraph.kg.knowledge.llm",
    "LLMError": "evergraph.kg.errors",
    "Answer": "evergraph.kg.knowledge.schemas",
    "Fact": "evergraph.kg.knowledge.schemas",
    "GuideResult": "evergraph.kg.knowledge.schemas",
    "KnowledgeClient": "evergraph.kg.service.client",
    "KnowledgeClientError": "evergraph.kg.errors",
    "Bundle": "evergraph.kg.store.bundle",
    "BundleError": "evergraph.kg.errors",
    "load_champion": "evergraph.kg.store.bundle",
    "switch_pointer": "evergraph.kg.store.bundle_writer",
    "write_bundle": "evergraph.kg.store.bundle_writer",
    "EvergraphHome": "evergraph.kg.store.home",
}

__all__ = [
    "Answer",
    "Bundle",
    "BundleError",
    "ChatConfig",
    "CheckpointError",
    "EvergraphError",
    "EvergraphHome",
    "Fact",
    "GrowingKG",
    "GuideConfig",
    "GuideResult",
    "INTERACTIONS",
    "IngestReport",
    "Interaction",
    "KGEModel",
    "Knowledge",
    "KnowledgeClient",
    "KnowledgeClientError",
    "LKGEConfig",
    "LLMError",
    "LLMNotConfiguredError",
    "LifelongRun",
    "Linker",
    "ModelConfig",
    "PROTOCOLS",
    "Problem",
    "RankingMetrics",
    "RunConfig",
    "STRATEGIES",
    "Snapshot",
    "SnapshotError",
    "Strategy",
    "StreamResult",
    "TrainConfig",
    "UnknownComponentError",
    "Vocabulary",
    "evaluate_stream",
    "get_interaction",
    "get_strategy",
    "load_champion",
    "switch_pointer",
    "write_bundle",
    "write_example_dataset",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'evergraph.kg' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
