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
    for name in kg.__all__:
        assert getattr(kg, name) is not None
