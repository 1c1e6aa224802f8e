"""The ``evergraph`` command: pipeline commands beside the engine's, and Prefect's environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evergraph.flows.cli import LIFELONG_DEPLOYMENT, build_parser, main, prefect_environment, trigger_parameters
from evergraph.kg.service.cli import engine_config
from evergraph.kg.store.home import EvergraphHome


def test_pipeline_and_engine_commands_share_one_parser() -> None:
    parser = build_parser()
    assert parser.parse_args(["run", "--max-epochs", "3"]).max_epochs == 3
    assert parser.parse_args(["rollback", "4"]).version == "4"
    assert parser.parse_args(["up", "--no-deploy"]).no_deploy
    train = parser.parse_args(["train", "--data", "d", "--out", "o"])
    assert train.strategy is None and engine_config(train).strategy == "lkge"  # the default comes from RunConfig


def test_prefect_home_is_created_inside_a_new_nested_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_HOME", raising=False)
    home = EvergraphHome.resolve(tmp_path / "a" / "b" / "home")
    env = prefect_environment(home)
    assert env["PREFECT_HOME"] == str(home.prefect_home)
    assert home.prefect_home.is_dir()  # the ephemeral API cannot start in a missing directory
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"


def test_trigger_options() -> None:
    parser = build_parser()
    args = parser.parse_args(["trigger", "--home", "h"])
    assert (args.home, args.prefect_port, args.api_url, args.data) == ("h", 4200, None, None)
    assert parser.parse_args(["trigger", "--api-url", "http://x/api", "--data", "d"]).api_url == "http://x/api"


def test_the_deployment_name_is_flow_slash_deployment() -> None:
    import yaml

    from evergraph.flows.lifelong import lifelong_pipeline

    deployments = yaml.safe_load((Path(__file__).resolve().parents[2] / "prefect.yaml").read_text())["deployments"]
    lifelong = next(d for d in deployments if d["entrypoint"].endswith(":lifelong_pipeline"))
    assert (
        LIFELONG_DEPLOYMENT
        == f"{lifelong_pipeline.name}/{lifelong['name']}"
        == ("evergraph-lifelong/evergraph-lifelong")
    )


def test_the_scheduled_deployment_continues_the_demo_lineage() -> None:
    import yaml

    from evergraph.flows.params import PipelineConfig, lineage_name
    from evergraph.kg.engine.example import example_config

    deployments = yaml.safe_load((Path(__file__).resolve().parents[2] / "prefect.yaml").read_text())["deployments"]
    lifelong = next(d for d in deployments if d["entrypoint"].endswith(":lifelong_pipeline"))
    config = PipelineConfig.model_validate(lifelong["parameters"]["config"])
    deployed = config.run_config(strategy=lifelong["parameters"]["strategy"], model=lifelong["parameters"]["model"])
    demo = example_config(strategy="lkge", model="transe")
    assert deployed == demo
    source = lifelong["parameters"]["source"]
    assert lineage_name(source=source, config=deployed) == lineage_name(source=source, config=demo)


def test_trigger_keeps_the_deployed_settings_and_makes_paths_absolute(tmp_path: Path) -> None:
    deployed = {"source": ".evergraph/example-data", "strategy": "lkge", "config": {"home": ".evergraph", "dim": 64}}
    home = EvergraphHome.resolve(tmp_path / "home")
    params = trigger_parameters(deployed=deployed, home=home, source=Path("data"))
    assert params["source"] == str(Path("data").resolve())
    assert params["config"] == {"home": str(home.root), "dim": 64}
    assert params["strategy"] == "lkge"
    assert deployed["config"]["home"] == ".evergraph"  # not modified in place


def test_trigger_without_snapshots_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trigger", "--home", str(tmp_path / "home")]) == 2
    out = " ".join(capsys.readouterr().out.split())  # the console may wrap it
    assert "holds no snapshot" in out and "evergraph run --home" in out


def test_trigger_creates_a_run_of_the_deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    for key in ("PREFECT_HOME", "EVERGRAPH_HOME", "PREFECT_API_URL"):  # trigger sets them: restore them after
        monkeypatch.setenv(key, os.environ.get(key, "-"))
        if os.environ[key] == "-":
            monkeypatch.delenv(key)
    home = EvergraphHome.resolve(tmp_path / "home")
    (home.root / "example-data" / "0").mkdir(parents=True)
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("evergraph-lifelong")
        deployment_id = client.create_deployment(
            flow_id=flow_id, name="evergraph-lifelong", parameters={"source": "x", "config": {"dim": 64}}
        )
    assert main(["trigger", "--home", str(home.root), "--api-url", PREFECT_API_URL.value()]) == 0
    assert "scheduled" in capsys.readouterr().out
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
    run = next(r for r in runs if r.deployment_id == deployment_id)
    assert run.parameters["source"] == str((home.root / "example-data").resolve())
    assert run.parameters["config"] == {"dim": 64, "home": str(home.root)}


def test_run_says_how_many_facts_wait_in_quarantine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import evergraph.flows.lifelong as lifelong
    import evergraph.flows.preflight as preflight
    import evergraph.registry as registry
    from evergraph.kg.store.quarantine import HeldFact, QuarantineStore

    home = tmp_path / "home"
    with QuarantineStore(home).locked() as facts:
        facts.append(
            HeldFact(id=1, lineage="l", snapshot=1, split="train", head="a", relation="r", tail="b",
                     probability=0.1, reason="low", champion="1", held="now")
        )  # fmt: skip
    summary = {"lineage": "l", "created": [], "unchanged": [0, 1], "champion": None, "champion_snapshot": None}
    monkeypatch.setattr(preflight, "check_before_run", lambda **kwargs: None)
    monkeypatch.setattr(lifelong, "lifelong_pipeline", lambda **kwargs: summary)
    prepared: list[dict] = []  # the store is prepared before the pipeline starts Prefect (not made here: not run)
    monkeypatch.setattr(registry, "prepare_store", lambda **kwargs: prepared.append(kwargs) or False)
    assert main(["run", "--data", str(tmp_path), "--home", str(home), "--quarantine", "hold", "--quiet"]) == 0
    assert "1 new fact(s) wait in quarantine" in capsys.readouterr().out
    assert [p["home"].root for p in prepared] == [home.resolve()]
