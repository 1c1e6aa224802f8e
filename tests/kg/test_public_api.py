import kg


def test_exported_names_are_pinned():
    assert sorted(kg.__all__) == sorted(
        [
            "INTERACTIONS",
            "PROTOCOLS",
            "STRATEGIES",
            "CheckpointError",
            "EvergraphError",
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
            "write_example_dataset",
        ]
    )
    for name in kg.__all__:
        assert getattr(kg, name) is not None
