"""The index type follows the size (factory ``auto``): exact Flat below ``approximate_above``, an approximate factory
above it with recall@10 against exact search measured at build time, recorded in the sidecar, and a fallback to
Flat (or an error) below ``min_recall``."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from evergraph.kg.engine.model import KGEModel
from evergraph.kg.errors import EntityIndexError
from evergraph.kg.store.index import EntityIndex, IndexConfig

COUNT, WIDTH = 2000, 16


def _vectors(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((COUNT, WIDTH)).astype(np.float32)


def test_below_the_threshold_the_index_is_exact() -> None:
    index = EntityIndex.from_vectors(_vectors(), interaction="transe")
    assert index.factory == "Flat"
    assert index.build_info["requested"] == "auto"
    assert index.recall_at_10 == 1.0 and index.build_info["fell_back_from"] is None


def test_above_a_forced_threshold_hnsw_is_built_and_its_recall_recorded(tmp_path) -> None:
    config = IndexConfig(approximate_above=COUNT - 1, recall_queries=200, use_gpu=False)
    index = EntityIndex.from_vectors(_vectors(), interaction="transe", config=config)
    assert index.factory == "HNSW32"
    assert 0.95 <= index.recall_at_10 <= 1.0
    assert index.build_info["recall_queries"] == 200
    # the measured recall agrees with recall_at_k against an exact index on the same kind of queries
    exact = EntityIndex.from_vectors(_vectors(), interaction="transe", config=IndexConfig(factory="Flat"))
    queries = _vectors(seed=5)[:200] * 0.1 + _vectors()[:200]
    assert index.recall_at_k(exact, queries) >= 0.9

    index.save(tmp_path / "index.faiss")
    sidecar = json.loads((tmp_path / "index.faiss.json").read_text())
    assert sidecar["factory"] == "HNSW32" and sidecar["build"]["recall@10"] == index.recall_at_10
    loaded = EntityIndex.load(tmp_path / "index.faiss", config=IndexConfig(use_gpu=False))  # auto: keep HNSW32
    assert loaded.factory == "HNSW32" and loaded.build_info == index.build_info
    with pytest.raises(EntityIndexError, match="holds a 'HNSW32' index"):
        EntityIndex.load(tmp_path / "index.faiss", config=IndexConfig(factory="Flat"))


def test_low_recall_falls_back_to_exact_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    config = IndexConfig(approximate_above=10, approximate_factory="PQ2x4", recall_queries=100, use_gpu=False)
    with caplog.at_level(logging.WARNING, logger="evergraph.kg.store.index"):
        index = EntityIndex.from_vectors(_vectors(), interaction="distmult", config=config)
    assert index.factory == "Flat"
    assert index.build_info["fell_back_from"] == "PQ2x4"
    assert index.recall_at_10 < 0.95  # the recall that made it fall back
    assert "building the exact Flat index instead" in caplog.text


def test_low_recall_can_be_an_error() -> None:
    config = IndexConfig(approximate_above=10, approximate_factory="PQ2x4", low_recall="error", use_gpu=False)
    with pytest.raises(EntityIndexError, match="below min_recall=0.95"):
        EntityIndex.from_vectors(_vectors(), interaction="transe", config=config)


def test_an_explicit_approximate_factory_is_measured_too() -> None:
    model = KGEModel(
        interaction="rotate", num_entities=COUNT, num_relations=3, dim=8, generator=torch.Generator().manual_seed(0)
    )
    config = IndexConfig(factory="HNSW32", recall_queries=300, min_recall=0.0, use_gpu=False)
    index = EntityIndex.build(model, config=config)
    assert index.factory == "HNSW32" and index.build_info["requested"] == "HNSW32"
    assert index.build_info["recall_queries"] == 300
    assert 0.0 < index.recall_at_10 <= 1.0
