"""The lifelong pipeline on the example KG: versions, champion, idempotent re-runs, refused history changes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from evergraph.flows.lifelong import lifelong_pipeline
from evergraph.flows.params import PipelineConfig, lineage_name
from evergraph.kg.engine.config import ModelConfig, RunConfig, TrainConfig
from evergraph.kg.errors import HistoryChangedError
from evergraph.kg.store.bundle import Bundle, load_champion, read_pointer
from evergraph.kg.store.home import EvergraphHome
from evergraph.registry import ModelRegistry, RegistryConfig


def small_source(example_data: Path, dest: Path, snapshots: int) -> Path:
    """The first ``snapshots`` snapshots of the example KG (and its name files) in ``dest``."""
    dest.mkdir(parents=True)
    for item in example_data.iterdir():
        if item.is_dir() and item.name.isdigit() and int(item.name) < snapshots:
            shutil.copytree(item, dest / item.name)
        elif item.is_file():
            shutil.copy(item, dest / item.name)
    return dest


def quick_config(home: Path, **registry: object) -> PipelineConfig:
    train = TrainConfig(max_epochs=10, eval_every=5, patience=2, checkpoint_every=5, seed=0, device="cpu")
    engine = RunConfig(model=ModelConfig(dim=32), train=train)
    return PipelineConfig(home=str(home), engine=engine, registry=RegistryConfig(**registry))


def open_registry(home: Path) -> ModelRegistry:
    return ModelRegistry(config=RegistryConfig(), home=EvergraphHome.resolve(home))


@pytest.fixture(scope="module")
def pipeline(example_data: Path, tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> dict:
    root = tmp_path_factory.mktemp("pipeline")
    source = small_source(example_data, root / "source", snapshots=3)
    config = quick_config(root / "home")
    summary = lifelong_pipeline(source=str(source), strategy="lkge", model="transe", config=config)
    return {"source": source, "config": config, "summary": summary, "home": root / "home"}


@pytest.mark.slow  # runs the whole pipeline
def test_one_version_per_snapshot_with_a_served_champion(pipeline: dict) -> None:
    summary = pipeline["summary"]
    assert [r["snapshot"] for r in summary["created"]] == [0, 1, 2]
    registry = open_registry(pipeline["home"])
    lineage = summary["lineage"]
    versions = [registry.find_version(lineage=lineage, snapshot=i) for i in range(3)]
    assert all(v is not None for v in versions)
    assert len({v.version for v in versions}) == 3
    assert [v.parent_version for v in versions] == [None, versions[0].version, versions[1].version]
    champion = registry.champion()
    assert champion is not None and champion.version == summary["champion"]
    # serving reads the pointer and the bundle, which hold the champion
    home = EvergraphHome.resolve(pipeline["home"])
    assert read_pointer(home.champion_pointer)["version"] == champion.version
    bundle = load_champion(home)
    assert isinstance(bundle, Bundle) and bundle.version == champion.version
    assert bundle.model.num_entities == bundle.index.num_entities


@pytest.mark.slow  # runs the whole pipeline
def test_the_prefect_ui_gets_metrics_card_links_plots_and_progress(pipeline: dict) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from evergraph.tasks.artifacts import artifact_key

    lineage = pipeline["summary"]["lineage"]
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_=lineage)))
    kinds = {(a.key, a.type) for a in found}
    for what, kind in [
        ("metrics", "table"),
        ("model-card", "markdown"),
        ("mlflow-run", "markdown"),  # Prefect stores link artifacts as markdown links
        ("gate", "markdown"),
        ("training", "progress"),
        ("forgetting_matrix.png", "image"),
        ("stream_mrr.png", "image"),
    ]:
        assert (artifact_key(lineage, what), kind) in kinds, (what, sorted(kinds))
    table = next(a for a in found if a.key == artifact_key(lineage, "metrics") and a.type == "table")
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert rows[-1]["test set"] == "stream" and 0 < rows[-1]["mrr"] <= 1
    progress = [a for a in found if a.type == "progress"]
    assert all(float(a.data) == 100.0 for a in progress)


@pytest.mark.slow  # runs the whole pipeline
def test_rerun_on_the_same_snapshots_creates_nothing(pipeline: dict) -> None:
    registry = open_registry(pipeline["home"])
    before = sorted(v.version for v in registry.versions())
    champion = registry.champion().version
    again = lifelong_pipeline(
        source=str(pipeline["source"]), strategy="lkge", model="transe", config=pipeline["config"]
    )
    assert again["created"] == []
    assert again["unchanged"] == [0, 1, 2]
    assert sorted(v.version for v in registry.versions()) == before
    assert registry.champion().version == champion


@pytest.mark.slow  # runs the whole pipeline
def test_a_new_snapshot_continues_the_lineage(pipeline: dict, example_data: Path) -> None:
    shutil.copytree(example_data / "3", pipeline["source"] / "3")
    summary = lifelong_pipeline(
        source=str(pipeline["source"]), strategy="lkge", model="transe", config=pipeline["config"]
    )
    assert [r["snapshot"] for r in summary["created"]] == [3]
    registry = open_registry(pipeline["home"])
    new = registry.find_version(lineage=summary["lineage"], snapshot=3)
    assert new.parent_version == registry.find_version(lineage=summary["lineage"], snapshot=2).version
    run_dir = EvergraphHome.resolve(pipeline["home"]).run_dir(summary["lineage"])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [e["snapshot"] for e in metrics["snapshots"]] == [0, 1, 2, 3]  # continued, not retrained


@pytest.mark.slow  # runs the whole pipeline
def test_a_changed_snapshot_is_refused_before_any_work(example_data: Path, tmp_path: Path) -> None:
    source = small_source(example_data, tmp_path / "source", snapshots=2)
    config = quick_config(tmp_path / "home")
    first = lifelong_pipeline(source=str(source), strategy="finetune", model="transe", config=config)
    registry = open_registry(tmp_path / "home")
    before = sorted(v.version for v in registry.versions())
    train = source / "1" / "train.txt"
    lines = train.read_text().splitlines(keepends=True)
    train.write_text("".join(lines[:-1]))  # history rewritten: one fact gone
    with pytest.raises(HistoryChangedError, match=r"snapshot 1 .*changed"):
        lifelong_pipeline(source=str(source), strategy="finetune", model="transe", config=config)
    assert sorted(v.version for v in registry.versions()) == before
    assert registry.champion().version == first["champion"]


def test_unknown_strategy_fails_before_any_work(tmp_path: Path, example_data: Path) -> None:
    config = quick_config(tmp_path / "home")
    with pytest.raises(Exception, match="nonsense"):
        lifelong_pipeline(source=str(example_data), strategy="nonsense", model="transe", config=config)
    assert not (tmp_path / "home" / "runs").exists()


def test_lineage_depends_on_source_and_options(tmp_path: Path) -> None:
    a = quick_config(tmp_path).run_config(strategy="lkge", model="transe")
    b = quick_config(tmp_path).run_config(strategy="finetune", model="transe")
    assert lineage_name(source=tmp_path / "x", config=a) == lineage_name(source=tmp_path / "x", config=a)
    assert lineage_name(source=tmp_path / "x", config=a) != lineage_name(source=tmp_path / "y", config=a)
    assert lineage_name(source=tmp_path / "x", config=a) != lineage_name(source=tmp_path / "x", config=b)
    assert lineage_name(source=tmp_path / "x", config=a).startswith("x-lkge-transe-")


@pytest.mark.slow  # runs the whole pipeline
def test_only_the_bundle_a_run_ends_with_mines_rules(pipeline: dict) -> None:
    registry = open_registry(pipeline["home"])
    home = EvergraphHome.resolve(pipeline["home"])
    lineage = pipeline["summary"]["lineage"]
    versions = {snapshot: registry.find_version(lineage=lineage, snapshot=snapshot).version for snapshot in range(3)}
    files = {snapshot: {p.name for p in home.bundle_dir(v).iterdir()} for snapshot, v in versions.items()}
    assert all("plausibility.json" in names for names in files.values())  # the next snapshot's check needs it
    assert ["rules.json" in files[s] for s in range(3)] == [False, False, True]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow  # runs the whole pipeline
def test_every_version_is_a_pyfunc_model_answering_from_its_bundle(
    pipeline: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.pyfunc
    import pandas as pd

    registry = open_registry(pipeline["home"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", registry.tracking_uri)
    champion = registry.champion()
    model = mlflow.pyfunc.load_model(f"models:/{registry.model_name}@champion")
    assert model.metadata.signature.inputs.input_names() == ["question"]
    out = model.predict(pd.DataFrame({"question": ["Where was Alan Bohr born?", "qwxz vbnm"]}))
    assert list(out["version"]) == [champion.version] * 2
    known = Bundle.load(EvergraphHome.resolve(pipeline["home"]).bundle_dir(champion.version))
    first, second = out.iloc[0], out.iloc[1]
    assert not first["abstained"] and "[1]" in first["context"]
    cited = json.loads(first["facts"])
    assert cited and all(fact["head"]["label"] in known.entities.labels for fact in cited)
    assert second["abstained"] and second["facts"] == "[]"
    # an older version is its own model: its bundle, its snapshot
    first_version = registry.find_version(lineage=pipeline["summary"]["lineage"], snapshot=0)
    older = mlflow.pyfunc.load_model(f"models:/{registry.model_name}/{first_version.version}")
    assert older.predict(pd.DataFrame({"question": ["Where was Alan Bohr born?"]}))["snapshot"].tolist() == [0]


@pytest.mark.slow  # starts `mlflow models serve` on the champion
def test_mlflow_models_serve_answers_with_the_champion(pipeline: dict, tmp_path: Path) -> None:
    registry = open_registry(pipeline["home"])
    port = _free_port()
    scripts = Path(sys.executable).parent  # mlflow runs `uvicorn` from PATH, as in an activated environment
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry.tracking_uri, "MLFLOW_REGISTRY_URI": registry.tracking_uri}
    env["PATH"] = f"{scripts}{os.pathsep}{env.get('PATH', '')}"
    mlflow_cli = scripts / "mlflow"
    command = [str(mlflow_cli), "models", "serve", "-m", f"models:/{registry.model_name}@champion"]
    command += ["--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)]
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600  # loading the model imports torch, FAISS and the encoder
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.5)
        body = {"dataframe_records": [{"question": "Where was Alan Bohr born?"}]}
        reply = httpx.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=60)
        assert reply.status_code == 200, reply.text
        rows = reply.json()["predictions"]
        assert len(rows) == 1 and rows[0]["version"] == registry.champion().version and rows[0]["context"]
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.mark.slow  # runs the whole pipeline
def test_rollback_serves_an_earlier_version(pipeline: dict) -> None:  # last: it moves the champion
    from evergraph.flows.rollback import rollback_champion

    registry = open_registry(pipeline["home"])
    lineage = pipeline["summary"]["lineage"]
    first = registry.find_version(lineage=lineage, snapshot=0)
    result = rollback_champion(version=first.version, home=str(pipeline["home"]))
    assert result["version"] == first.version
    assert registry.champion().version == first.version
    bundle = load_champion(EvergraphHome.resolve(pipeline["home"]))
    assert (bundle.version, bundle.snapshot) == (first.version, 0)
    with pytest.raises(Exception, match="999"):
        rollback_champion(version="999", home=str(pipeline["home"]))
    assert registry.champion().version == first.version


def test_every_artifact_has_a_description_and_the_parent_run_a_summary(pipeline: dict) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from evergraph.tasks.artifacts import artifact_key

    summary = pipeline["summary"]
    lineage = summary["lineage"]
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_=lineage)))
        assert found and all(a.description for a in found), sorted(a.key for a in found if not a.description)
        summaries = [a for a in found if a.key == artifact_key(lineage, "run-summary")]
        expected = [f"Champion: version {summary['champion']}"]
        for row in summary["created"]:  # each snapshot links its subflow run (artifacts tab) and its MLflow run
            assert client.read_flow_run(row["flow_run_id"]).name == f"snapshot-{row['snapshot']}"
            expected += [f"[snapshot-{row['snapshot']}](/runs/flow-run/{row['flow_run_id']}?tab=Artifacts)"]
            expected += [f"[MLflow run]({row['run_url']})"]
    texts = [a.data if isinstance(a.data, str) else json.dumps(a.data) for a in summaries]
    assert any(all(e in text for e in expected) for text in texts), (expected, texts)  # the first run's summary
