import importlib

import pytest

from evergraph import kg


def test_exported_names_are_pinned():
    assert sorted(kg.__all__) == sorted(
        [
            "INTERACTIONS",
            "PROTOCOLS",
            "STRATEGIES",
            "Bundle",
            "BundleError",
            "CheckpointError",
            "EvergraphError",
            "EvergraphHome",
            "GrowingKG",
            "IngestReport",
            "Interaction",
            "KGEModel",
            "LKGEConfig",
            "LifelongRun",
            "ModelConfig",
            "Problem",
            "RankingMetrics",
            "RunConfig",
            "Snapshot",
            "SnapshotError",
            "StreamResult",
            "Strategy",
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
        ]
    )


def test_every_exported_name_resolves_to_its_lazy_module() -> None:
    """Each name of ``__all__`` is listed in ``_LAZY`` and is the very object its module defines (a typo in
    ``_LAZY`` or a name moved to another module fails here, not in a user's import)."""
    assert sorted(kg._LAZY) == sorted(kg.__all__)
    for name, module in kg._LAZY.items():
        assert module.startswith("evergraph.kg."), (name, module)
        assert getattr(kg, name) is getattr(importlib.import_module(module), name), name


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        kg.Nope  # noqa: B018
