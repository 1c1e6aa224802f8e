"""Memory-mapped bundles: the weights, the FAISS index and the facts are mapped from the bundle's files, the SHA-256
check still applies, and the answers are those of a bundle read into memory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from evergraph.kg.engine.atomic import sha256_file
from evergraph.kg.engine.lifelong import LifelongRun
from evergraph.kg.errors import BundleError
from evergraph.kg.store.bundle import Bundle
from evergraph.kg.store.bundle_writer import write_bundle
from tests.conftest import fast_config

MAPS = Path("/proc/self/maps")


@pytest.fixture(scope="module")
def bundle_dir(example_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mmap") / "run"
    config = fast_config("finetune", max_epochs=3, eval_every=3)
    LifelongRun(data=example_data, out=out, config=config, show_progress=False).run(upto=0)
    return write_bundle(run_dir=out, snapshot=0, dest=tmp_path_factory.mktemp("b") / "v1", version="1")


def _mapped_files() -> set[str]:
    return {line.split(maxsplit=5)[-1] for line in MAPS.read_text().splitlines() if len(line.split()) >= 6}


def test_mapped_and_read_bundles_answer_the_same(bundle_dir: Path) -> None:
    mapped = Bundle.load(bundle_dir)
    read = Bundle.load(bundle_dir, mmap=False)
    for key, value in read.model.state_dict().items():
        assert torch.equal(mapped.model.state_dict()[key], value)
    entities, relations = torch.arange(0, 20), torch.arange(0, 20) % (2 * read.model.num_relations)
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            mapped.index.predict_tails(mapped.model, entities, relations, k=10),
            read.index.predict_tails(read.model, entities, relations, k=10),
            strict=True,
        )
    )
    assert torch.equal(mapped.facts.facts, read.facts.facts)
    assert mapped.index.build_info == read.index.build_info


@pytest.mark.skipif(not MAPS.exists(), reason="needs /proc/self/maps (Linux) to see which files are mapped")
def test_the_weights_and_the_index_are_memory_mapped(bundle_dir: Path) -> None:
    bundle = Bundle.load(bundle_dir)
    mapped = _mapped_files()
    assert str(bundle_dir / "weights.pt") in mapped
    assert str(bundle_dir / "index.faiss") in mapped
    before = bundle.model.entity.detach().clone()
    with torch.no_grad():
        bundle.model.entity.add_(1.0)  # copy-on-write: the file is not changed
    again = Bundle.load(bundle_dir)
    assert torch.equal(again.model.entity, before)


def test_a_tampered_bundle_is_still_refused(bundle_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "v1"
    shutil.copytree(bundle_dir, copy)
    weights = torch.load(copy / "weights.pt", weights_only=True)
    weights["entity"][0, 0] += 1.0
    torch.save(weights, copy / "weights.pt")
    with pytest.raises(BundleError, match="SHA-256"):
        Bundle.load(copy)

    # a weights file of the wrong width, its hash rewritten to match: refused, naming the file
    weights["entity"] = weights["entity"][:, :-1].clone()
    torch.save(weights, copy / "weights.pt")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["weights.pt"] = sha256_file(copy / "weights.pt")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"weights\.pt: entity table of shape .* does not fit the manifest"):
        Bundle.load(copy)
