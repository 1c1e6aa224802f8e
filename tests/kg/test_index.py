import json
from pathlib import Path

import faiss
import numpy as np
import pytest
import torch

from evergraph.kg.engine.interactions import INTERACTIONS
from evergraph.kg.engine.model import KGEModel
from evergraph.kg.errors import EntityIndexError, UnknownComponentError
from evergraph.kg.store.index import METRICS, EntityIndex, IndexConfig, metric_for

NUM_ENTITIES, NUM_RELATIONS, DIM = 300, 5, 16


def random_model(interaction: str, *, seed: int = 0) -> KGEModel:
    return KGEModel(
        interaction=interaction,
        num_entities=NUM_ENTITIES,
        num_relations=NUM_RELATIONS,
        dim=DIM,
        generator=torch.Generator().manual_seed(seed),
    )


def random_queries(count: int = 40, *, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Entities and model relation ids, forward (even) and inverse (odd) alike."""
    g = torch.Generator().manual_seed(seed)
    entities = torch.randint(NUM_ENTITIES, (count,), generator=g)
    relations = torch.randint(2 * NUM_RELATIONS, (count,), generator=g)
    assert (relations % 2 == 0).any() and (relations % 2 == 1).any()
    return entities, relations


@pytest.mark.parametrize("interaction", ["transe", "rotate", "distmult", "complex"])
def test_flat_top_k_equals_brute_force_ranking(interaction: str) -> None:
    model = random_model(interaction)
    index = EntityIndex.build(model)
    assert (index.num_entities, index.width, index.factory, index.on_gpu) == (
        NUM_ENTITIES,
        model.entity.shape[1],
        "Flat",
        False,
    )
    entities, relations = random_queries()
    scores, ids = index.predict_tails(model, entities, relations, k=10)
    assert scores.shape == ids.shape == (len(entities), 10) and ids.dtype == torch.int64

    with torch.no_grad():
        expected = model.score_fn()(entities, relations, NUM_ENTITIES).topk(10, dim=1).indices
        tails = ids.reshape(-1)
        triples = torch.stack([entities.repeat_interleave(10), relations.repeat_interleave(10), tails], dim=1)
        distances = model.distance(triples).reshape(-1, 10)
    assert torch.equal(ids, expected)
    torch.testing.assert_close(scores, -distances, atol=1e-4, rtol=0)
    assert (scores[:, :-1] >= scores[:, 1:]).all()  # best first


def test_search_accepts_numpy_and_cuts_k_to_the_entity_count() -> None:
    model = random_model("transe")
    index = EntityIndex.build(model)
    queries = model.entity.detach()[:3]
    scores, ids = index.search(queries.numpy(), k=NUM_ENTITIES + 50)
    assert ids.shape == (3, NUM_ENTITIES)
    assert torch.equal(ids[:, 0], torch.arange(3))  # each vector is its own nearest neighbour
    assert torch.allclose(scores[:, 0], torch.zeros(3), atol=1e-3)
    with pytest.raises(EntityIndexError, match="width"):
        index.search(torch.zeros(2, DIM + 1), k=5)


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = random_model("rotate")
    index = EntityIndex.build(model)
    path = tmp_path / "sub" / "entities.faiss"
    index.save(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["entities.faiss", "entities.faiss.json"]
    meta = json.loads((tmp_path / "sub" / "entities.faiss.json").read_text())
    assert meta["factory"] == "Flat" and meta["interaction"] == "rotate" and meta["metric"] == "L2"
    assert (meta["num_entities"], meta["width"]) == (NUM_ENTITIES, 2 * DIM)

    loaded = EntityIndex.load(path, model=model)
    entities, relations = random_queries()
    before = index.predict_tails(model, entities, relations, k=10)
    after = loaded.predict_tails(model, entities, relations, k=10)
    assert torch.equal(before[1], after[1]) and torch.equal(before[0], after[0])


def test_load_refuses_a_mismatched_sidecar_or_model(tmp_path: Path) -> None:
    path = tmp_path / "entities.faiss"
    EntityIndex.build(random_model("transe")).save(path)
    sidecar = tmp_path / "entities.faiss.json"
    meta = json.loads(sidecar.read_text())

    with pytest.raises(EntityIndexError, match="interaction 'rotate' vs 'transe'"):
        EntityIndex.load(path, model=random_model("rotate"))

    sidecar.write_text(json.dumps({**meta, "width": DIM * 2}))
    with pytest.raises(EntityIndexError, match=f"width {2 * DIM} in the sidecar but {DIM}"):
        EntityIndex.load(path)

    sidecar.write_text(json.dumps({**meta, "interaction": "rotate"}))
    with pytest.raises(EntityIndexError, match="does not match this index"):
        EntityIndex.load(path, model=random_model("transe"))

    sidecar.write_text(json.dumps({**meta, "interaction": "distmult"}))  # an L2 index is not an inner-product one
    with pytest.raises(EntityIndexError, match="metric"):
        EntityIndex.load(path)

    sidecar.write_text(json.dumps({**meta, "interaction": "conve"}))
    with pytest.raises(UnknownComponentError, match="conve"):
        EntityIndex.load(path)

    sidecar.write_text(json.dumps(meta))
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(EntityIndexError, match="does not match the SHA-256 in its sidecar"):
        EntityIndex.load(path)


def test_hnsw_recall_against_flat() -> None:
    model = random_model("transe")
    exact = EntityIndex.build(model)
    approx = EntityIndex.build(model, config=IndexConfig(factory="HNSW32", ef_search=64))
    entities, relations = random_queries(100)
    with torch.no_grad():
        queries = model.query(entities, relations)
    assert exact.recall_at_k(exact, queries) == 1.0
    assert approx.recall_at_k(exact, queries, k=10) > 0.9


def test_ivf_with_too_few_vectors_is_refused_with_advice() -> None:
    model = random_model("transe")
    with pytest.raises(EntityIndexError, match=r"1024 IVF lists.*only 300.*'Flat'.*IVF7"):
        EntityIndex.build(model, config=IndexConfig(factory="IVF1024,Flat"))
    small = EntityIndex.build(model, config=IndexConfig(factory="IVF4,Flat", nprobe=4))
    assert small.num_entities == NUM_ENTITIES
    # nprobe = nlist visits every list: exact again
    queries = model.entity.detach()[:20] + 0.01
    assert small.recall_at_k(EntityIndex.build(model), queries) == 1.0
    # other training failures (PQ codebooks of 256 centroids from 100 vectors) are clear errors too
    with pytest.raises(EntityIndexError, match="failed to train"):
        EntityIndex.from_vectors(np.random.rand(100, 16), interaction="transe", config=IndexConfig(factory="PQ4"))


def test_unknown_interaction_and_config_errors() -> None:
    with pytest.raises(UnknownComponentError, match="no FAISS metric is known for interaction 'conve'"):
        EntityIndex.from_vectors(torch.randn(10, 4), interaction="conve")
    with pytest.raises(UnknownComponentError, match="known: complex, distmult, rotate, transe"):
        metric_for("tucker")
    with pytest.raises(ValueError, match="extra"):
        IndexConfig(nlist=3)
    with pytest.raises(EntityIndexError, match="NaN"):
        EntityIndex.from_vectors(torch.full((5, 4), float("nan")), interaction="transe")


def test_every_interaction_has_a_metric() -> None:
    assert set(INTERACTIONS.names()) <= set(METRICS.names())
    assert metric_for("TransE") == metric_for("rotate") == faiss.METRIC_L2
    assert metric_for("distmult") == metric_for("ComplEx") == faiss.METRIC_INNER_PRODUCT


def test_load_reports_a_missing_or_broken_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "entities.faiss"
    EntityIndex.build(random_model("transe")).save(path)
    sidecar = tmp_path / "entities.faiss.json"
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({key: value for key, value in meta.items() if key != "width"}))
    with pytest.raises(EntityIndexError, match="lacks width"):
        EntityIndex.load(path)
    sidecar.write_text("{not json")
    with pytest.raises(EntityIndexError, match="not valid JSON"):
        EntityIndex.load(path)
    sidecar.unlink()
    with pytest.raises(EntityIndexError, match="is missing"):
        EntityIndex.load(path)
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(EntityIndexError, match="not 'HNSW32'"):
        EntityIndex.load(path, config=IndexConfig(factory="HNSW32"))


def test_a_format_1_sidecar_is_still_read(tmp_path: Path) -> None:
    """Bundles written before the one manifest format hold ``{"format": 1, "sha256": ...}`` sidecars."""
    model = KGEModel(interaction="transe", num_entities=50, num_relations=3, dim=DIM)
    EntityIndex.build(model, config=IndexConfig(factory="Flat")).save(tmp_path / "index.faiss")
    sidecar = tmp_path / "index.faiss.json"
    meta = json.loads(sidecar.read_text())
    assert meta["format"] == 2 and list(meta["files"]) == ["index.faiss"]
    old = {**{k: v for k, v in meta.items() if k != "files"}, "format": 1, "sha256": meta["files"]["index.faiss"]}
    sidecar.write_text(json.dumps(old))
    assert EntityIndex.load(tmp_path / "index.faiss", model=model).num_entities == 50
    sidecar.write_text(json.dumps({**old, "sha256": "0" * 64}))
    with pytest.raises(EntityIndexError, match="does not match the SHA-256 in its sidecar index.faiss.json"):
        EntityIndex.load(tmp_path / "index.faiss")
