import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from mlflow import MlflowClient

from evergraph.kg.errors import ManifestError, RegistryError
from evergraph.registry import ModelRegistry, RegistryConfig, decide, log_snapshot_run
from tests.registry.conftest import LINEAGE


def register_both(registry: ModelRegistry, logged: dict[int, str], metrics: dict[str, Any]):
    entries = metrics["snapshots"]
    v0 = registry.register(run_id=logged[0], lineage=LINEAGE, snapshot=0, content_hash=entries[0]["content_hash"])
    v1 = registry.register(
        run_id=logged[1],
        lineage=LINEAGE,
        snapshot=1,
        content_hash=entries[1]["content_hash"],
        parent_version=v0.version,
    )
    return v0, v1


def test_register_is_idempotent_and_tags_the_version(
    config: RegistryConfig, logged: dict[int, str], metrics: dict[str, Any]
):
    registry = ModelRegistry(config=config)
    v0, v1 = register_both(registry, logged, metrics)
    again = registry.register(
        run_id=logged[1], lineage=LINEAGE, snapshot=1, content_hash=metrics["snapshots"][1]["content_hash"]
    )
    assert again == v1 and [v.version for v in registry.versions()] == ["1", "2"]
    assert registry.find_version(lineage=LINEAGE, snapshot=1) == v1
    assert registry.find_version(lineage=LINEAGE, snapshot=4) is None
    assert (v1.snapshot, v1.lineage, v1.parent_version, v1.run_id) == (1, LINEAGE, "1", logged[1])
    tags = MlflowClient(tracking_uri=config.tracking_uri).get_model_version(config.registered_model, "2").tags
    assert tags["evergraph.content_hash"] == metrics["snapshots"][1]["content_hash"]
    with pytest.raises(RegistryError, match="use a new lineage name"):
        registry.register(run_id=logged[1], lineage=LINEAGE, snapshot=1, content_hash="0" * 64)


def test_promote_rollback_and_unknown_versions(config: RegistryConfig, logged: dict[int, str], metrics: dict[str, Any]):
    registry = ModelRegistry(config=config)
    v0, v1 = register_both(registry, logged, metrics)
    assert registry.champion() is None
    first = decide(new_entry=registry.version_metrics(v0.version), champion_entry=None, tolerance=0.01)
    assert registry.promote(version=v0.version, decision=first).aliases == ("champion",)

    worse = decide(
        new_entry=metrics["snapshots"][1],
        champion_entry=registry.version_metrics(v0.version),
        new_on_new=0.1,
        champion_on_new=0.2,
        tolerance=0.01,
    )
    failed = registry.promote(v1.version, worse)
    assert not worse.promote and failed.aliases == ("challenger",) and failed.gate == "failed"
    assert registry.champion() == registry.get_version(version=v0.version)
    client = MlflowClient(tracking_uri=config.tracking_uri)
    assert "new knowledge: failed" in client.get_model_version(config.registered_model, v1.version).description
    assert "gate.md" in {a.path for a in client.list_artifacts(v1.run_id)}

    better = worse.model_copy(update={"promote": True})
    assert registry.promote(version=v1.version, decision=better).aliases == ("champion",)
    assert registry.challenger() is None
    assert registry.rollback(v0.version).aliases == ("champion",)
    assert registry.champion().version == v0.version
    with pytest.raises(RegistryError, match="has no version 9 .*known versions: 1, 2"):
        registry.rollback(version=9)


def test_download_verifies_every_sha256(config: RegistryConfig, run_dir: Path, metrics: dict[str, Any], tmp_path: Path):
    # a lineage of its own, so tampering with its stored artifacts touches no other test
    registry = ModelRegistry(config=config)
    run_id = log_snapshot_run(
        run_dir=run_dir, snapshot=1, lineage="tampered", client=registry.client, experiment_id=registry.experiment_id
    )
    assert registry.run_content_hash(run_id) == metrics["snapshots"][1]["content_hash"]
    version = registry.register(
        run_id=run_id, lineage="tampered", snapshot=1, content_hash=registry.run_content_hash(run_id)
    )
    good = registry.download(version=version.version, dst=tmp_path / "good")
    assert json.loads((good / "manifest.json").read_text())["snapshot"] == 1
    with pytest.raises(RegistryError, match="not an empty directory"):
        registry.download(version=version.version, dst=good)

    stored = Path(urlparse(MlflowClient(tracking_uri=config.tracking_uri).get_run(run_id).info.artifact_uri).path)
    with (stored / "model" / "entities.tsv").open("a") as handle:
        handle.write("999\tintruder\n")
    with pytest.raises(ManifestError, match="entities.tsv does not match the SHA-256"):
        registry.download(version=version.version, dst=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_versions_link_to_their_runs_in_the_ui(tracking_uri: str, logged: dict[int, str]):
    registry = ModelRegistry(config=RegistryConfig(tracking_uri=tracking_uri, mlflow_ui_url="http://127.0.0.1:5000/"))
    url = registry.run_url(logged[0])
    assert url is not None and url.startswith("http://127.0.0.1:5000/#/experiments/") and url.endswith(logged[0])
    plots = registry.plot_urls(logged[0])
    assert plots["stream_mrr.png"].startswith("http://127.0.0.1:5000/get-artifact?path=plots%2Fstream_mrr.png")
    local = ModelRegistry(config=RegistryConfig(tracking_uri=tracking_uri, mlflow_ui_url=None)).plot_urls(logged[0])
    assert Path(urlparse(local["forgetting_matrix.png"]).path).is_file()
