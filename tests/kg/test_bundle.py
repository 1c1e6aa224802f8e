import json
import shutil
from pathlib import Path

import pytest
import torch

import evergraph.kg.store.bundle_writer
from evergraph.kg.engine.lifelong import LifelongRun
from evergraph.kg.engine.run_files import load_model_checkpoint
from evergraph.kg.engine.vocab import Vocabulary
from evergraph.kg.errors import BundleError
from evergraph.kg.store.bundle import Bundle, load_champion, read_pointer
from evergraph.kg.store.bundle_writer import index_path, switch_pointer, write_bundle
from evergraph.kg.store.home import EvergraphHome
from tests.conftest import fast_config


@pytest.fixture(scope="module")
def run_dir(example_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny lkge run over snapshots 0 and 1."""
    out = tmp_path_factory.mktemp("bundle") / "run"
    config = fast_config("lkge", max_epochs=3, eval_every=3)  # learning quality does not matter here
    LifelongRun(data=example_data, out=out, config=config, show_progress=False).run(upto=1)
    return out


@pytest.fixture(scope="module")
def bundle0(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Snapshot 0 bundled after snapshot 1 was trained (the run's vocabularies are longer than snapshot 0's)."""
    return write_bundle(run_dir=run_dir, snapshot=0, dest=tmp_path_factory.mktemp("b") / "v1", version="1")


def test_round_trip_truncates_to_the_snapshot_and_searches_exactly(run_dir: Path, bundle0: Path) -> None:
    bundle = Bundle.load(bundle0)
    model, _ = load_model_checkpoint(run_dir / "checkpoints" / "snapshot-0.pt")
    assert (bundle.version, bundle.snapshot, bundle.path) == ("1", 0, bundle0)
    assert not bundle.model.training
    for key, value in model.state_dict().items():
        assert torch.equal(bundle.model.state_dict()[key], value)

    run_entities = Vocabulary.load(run_dir / "vocab" / "entities.tsv")
    assert len(bundle.entities) == model.num_entities < len(run_entities)
    assert bundle.entities.labels == run_entities.labels[: model.num_entities]
    assert len(bundle.relations) == model.num_relations
    assert bundle.entity_names and bundle.relation_names  # the example data has name files

    manifest = json.loads((bundle0 / "manifest.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())["snapshots"][0]
    assert manifest["content_hash"] == metrics["content_hash"] == bundle.metrics["content_hash"]
    assert (manifest["interaction"], manifest["num_entities"]) == ("transe", model.num_entities)
    assert sorted(manifest["files"]) == sorted(p.name for p in bundle0.iterdir() if p.name != "manifest.json")
    assert sorted(torch.load(bundle0 / "weights.pt", weights_only=True)) == ["entity", "relation"]
    assert index_path(run_dir, 0).is_file()  # built on demand, kept in the run

    entities, relations = torch.tensor([0, 5, 17, 3]), torch.tensor([0, 1, 2, 3])
    scores, ids = bundle.index.predict_tails(bundle.model, entities, relations, k=10)
    with torch.no_grad():
        expected = model.score_fn()(entities, relations, model.num_entities).topk(10, dim=1).indices
    assert torch.equal(ids, expected)


@pytest.mark.parametrize("name", ["weights.pt", "entities.tsv", "index.faiss", "metrics.json", "entity_names.tsv"])
def test_a_tampered_or_missing_file_is_named(bundle0: Path, tmp_path: Path, name: str) -> None:
    copy = Path(shutil.copytree(bundle0, tmp_path / "copy"))
    with (copy / name).open("ab") as handle:
        handle.write(b"\n")
    with pytest.raises(BundleError, match=rf"{name} does not match the SHA-256"):
        Bundle.load(copy)
    (copy / name).unlink()
    with pytest.raises(BundleError, match=rf"{name} is missing"):
        Bundle.load(copy)


def test_write_is_idempotent_and_refuses_other_content(run_dir: Path, bundle0: Path) -> None:
    before = (bundle0 / "manifest.json").read_bytes()
    assert write_bundle(run_dir=run_dir, snapshot=0, dest=bundle0, version="1") == bundle0
    assert (bundle0 / "manifest.json").read_bytes() == before  # not rewritten
    with pytest.raises(BundleError, match="already holds version '1'"):
        write_bundle(run_dir=run_dir, snapshot=1, dest=bundle0, version="2")
    with pytest.raises(BundleError, match="not finished snapshot 4"):
        write_bundle(run_dir=run_dir, snapshot=4, dest=bundle0.parent / "v9", version="9")


def test_an_interrupted_write_leaves_no_bundle(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "v2"
    (tmp_path / ".v2.stray.tmp").mkdir()  # left by a killed writer

    def crash(path: Path, data: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(evergraph.kg.store.bundle_writer, "write_json", crash)
        with pytest.raises(KeyboardInterrupt):
            write_bundle(run_dir=run_dir, snapshot=1, dest=dest, version="2")
    # neither the killed writer's half-written bundle nor this interrupted one's is left (issue 13)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert Bundle.load(write_bundle(run_dir=run_dir, snapshot=1, dest=dest, version="2")).snapshot == 1


def test_pointer_switch_and_load_champion(run_dir: Path, bundle0: Path, tmp_path: Path) -> None:
    home = EvergraphHome(tmp_path / "home")
    with pytest.raises(BundleError, match="no champion yet .*: run `evergraph run` first"):
        load_champion(home)
    assert read_pointer(home.champion_pointer) is None

    inside = write_bundle(run_dir=run_dir, snapshot=1, dest=home.bundle_dir(2), version="2")
    switch_pointer(pointer=home.champion_pointer, bundle=inside, version="2")
    assert read_pointer(home.champion_pointer)["bundle"] == "bundles/v2"  # relative: the home can move
    assert load_champion(home.root).version == "2"

    switch_pointer(pointer=home.champion_pointer, bundle=bundle0, version="1")  # roll back to an outside bundle
    assert read_pointer(home.champion_pointer)["bundle"] == str(bundle0.resolve())
    assert load_champion(home).snapshot == 0
    assert [p.name for p in home.root.iterdir() if p.name.startswith(".")] == []  # no temp files left

    with pytest.raises(BundleError, match="holds version '1', not '3'"):
        switch_pointer(pointer=home.champion_pointer, bundle=bundle0, version="3")
