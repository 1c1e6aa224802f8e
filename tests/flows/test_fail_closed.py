"""The pipeline fails closed (issue 13): a gate that cannot compare does not promote (unless forced), an
interrupted promotion is completed instead of judged against itself, and expected errors print one clean line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mlflow import MlflowClient

from evergraph.flows.lifelong import lifelong_pipeline
from evergraph.flows.params import PipelineConfig
from evergraph.kg.engine.config import TrainConfig
from evergraph.kg.errors import RegistryError
from evergraph.kg.store.bundle import read_pointer
from evergraph.kg.store.home import EvergraphHome
from evergraph.registry import GateDecision, ModelRegistry, RegistryConfig
from tests.flows.test_lifelong import small_source


def tiny_config(home: Path, *, dim: int = 32, **options: object) -> PipelineConfig:
    train = TrainConfig(max_epochs=3, eval_every=3, patience=1, checkpoint_every=3, seed=0, device="cpu")
    return PipelineConfig(home=str(home), dim=dim, train=train, **options)


def gate_text(home: Path, version: str) -> str:
    registry = ModelRegistry(config=RegistryConfig(), home=EvergraphHome.resolve(home))
    client = MlflowClient(tracking_uri=registry.tracking_uri)
    return client.get_model_version(registry.model_name, version).description or ""


@pytest.fixture(scope="module")
def champion_home(example_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A home whose champion learned snapshots 0 and 1 (dim 32)."""
    root = tmp_path_factory.mktemp("fail-closed")
    source = small_source(example_data, root / "source", snapshots=2)
    summary = lifelong_pipeline(source=str(source), strategy="finetune", model="transe", config=tiny_config(root / "h"))
    return {"root": root, "home": root / "h", "champion": summary["champion"]}


def test_a_new_lineage_that_cannot_compare_stays_challenger(champion_home: dict, example_data: Path) -> None:
    home, champion = champion_home["home"], champion_home["champion"]
    # snapshot 0 only, same kind of model: the champion knows entities this version lacks
    smaller = small_source(example_data, champion_home["root"] / "smaller", snapshots=1)
    summary = lifelong_pipeline(source=str(smaller), strategy="finetune", model="transe", config=tiny_config(home))
    (created,) = summary["created"]
    assert created["alias"] == "challenger"
    assert any(reason.startswith("not comparable: the champion") for reason in created["reasons"])
    assert summary["champion"] == champion and read_pointer(EvergraphHome(home).champion_pointer)["version"] == champion
    # other options (another dim): nothing compares on equal terms and no rule can decide
    other = small_source(example_data, champion_home["root"] / "other", snapshots=1)
    config = tiny_config(home, dim=16)
    summary = lifelong_pipeline(source=str(other), strategy="finetune", model="transe", config=config)
    (created,) = summary["created"]
    assert created["alias"] == "challenger" and any("undecided" in reason for reason in created["reasons"])
    assert summary["champion"] == champion


def test_promote_anyway_promotes_and_records_it(champion_home: dict, example_data: Path) -> None:
    home = champion_home["home"]
    forced = small_source(example_data, champion_home["root"] / "forced", snapshots=1)
    config = tiny_config(home, promote_anyway=True)
    summary = lifelong_pipeline(source=str(forced), strategy="finetune", model="transe", config=config)
    (created,) = summary["created"]
    assert created["alias"] == "champion" and summary["champion"] == created["version"]
    assert any(reason.startswith("forced: promoted with --promote-anyway") for reason in created["reasons"])
    assert "FORCED with --promote-anyway" in gate_text(home, created["version"])


def test_an_interrupted_promotion_is_completed_on_the_next_run(
    example_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import evergraph.tasks.promote
    from evergraph.registry.models import ModelRegistry as Registry

    source = small_source(example_data, tmp_path / "source", snapshots=1)
    config = tiny_config(tmp_path / "home")
    first = lifelong_pipeline(source=str(source), strategy="finetune", model="transe", config=config)
    small_source(example_data, tmp_path / "all", snapshots=2)
    os.rename(tmp_path / "all" / "1", source / "1")

    def passes(**kwargs: object) -> GateDecision:
        return GateDecision(promote=True, reasons=["passed (test)"], new_snapshot=1)

    def crash(self: Registry, version: str, decision: GateDecision) -> None:
        raise RegistryError("simulated crash after the pointer switch, before the alias move")

    with monkeypatch.context() as patch:
        patch.setattr(evergraph.tasks.promote, "decide", passes)
        patch.setattr(Registry, "promote", crash)
        with pytest.raises(RegistryError, match="simulated crash"):
            lifelong_pipeline(source=str(source), strategy="finetune", model="transe", config=config)
    registry = ModelRegistry(config=RegistryConfig(), home=EvergraphHome.resolve(tmp_path / "home"))
    new = registry.find_version(lineage=first["lineage"], snapshot=1)
    assert new is not None and new.gate is None
    assert read_pointer(EvergraphHome(tmp_path / "home").champion_pointer)["version"] == new.version
    assert registry.champion().version == first["champion"]  # the alias never moved

    again = lifelong_pipeline(source=str(source), strategy="finetune", model="transe", config=config)
    assert again["champion"] == new.version == registry.champion().version
    (created,) = again["created"]
    assert created["alias"] == "champion"
    assert created["reasons"][0].startswith("interrupted promotion completed")
    assert "passed (test)" not in gate_text(tmp_path / "home", new.version)


def test_rollback_to_an_unknown_version_prints_one_clean_error(
    champion_home: dict, capfd: pytest.CaptureFixture[str], restored_environment: None
) -> None:
    from evergraph.flows.cli import main

    code = main(["rollback", "999", "--home", str(champion_home["home"])])
    out, err = capfd.readouterr()
    assert code != 0
    assert "Traceback" not in out + err
    errors = [line for line in (out + err).splitlines() if "error:" in line]
    assert len(errors) == 1 and "999" in errors[0]
