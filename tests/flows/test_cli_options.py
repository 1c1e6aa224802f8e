"""One source of engine defaults and options: `train` and `run` share them, names are checked before any work,
every argument has help, and `evergraph --version` works."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from pydantic import ValidationError

from evergraph.flows.cli import build_parser, main
from evergraph.flows.params import PipelineConfig
from evergraph.kg.engine.config import RunConfig
from evergraph.kg.service import cli as kg_cli


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def test_every_argument_has_help() -> None:
    parser = build_parser()
    missing = [f"evergraph {a.dest}" for a in parser._actions if not a.help]
    for name, command in _subcommands(parser).items():
        missing += [f"evergraph {name} {a.option_strings or a.dest}" for a in command._actions if not a.help]
    assert missing == []


def test_run_accepts_every_engine_option_of_train() -> None:
    commands = _subcommands(build_parser())
    train_only = _options(commands["train"]) - _options(commands["run"])
    assert train_only == {"--data", "--out", "--upto"} - _options(commands["run"])
    assert {"--strategy", "--model", "--protocol", "--init-scale", "--lr", "--no-transfer"} <= _options(commands["run"])


@pytest.mark.parametrize("command", ["train", "run"])
@pytest.mark.parametrize("option", ["--strategy", "--model", "--protocol"])
def test_unknown_names_are_refused_while_parsing(
    command: str, option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [command, "--data", str(tmp_path / "data"), option, "nope"]
    argv += ["--out", str(tmp_path / "out")] if command == "train" else ["--home", str(tmp_path / "home")]
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "home").exists()  # no work was done


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.startswith("evergraph ")


def test_engine_config_takes_defaults_from_the_engine_and_flags_on_top() -> None:
    parser = build_parser()
    args = parser.parse_args(["train", "--data", "d", "--out", "o"])
    assert kg_cli.engine_config(args) == RunConfig()
    args = parser.parse_args(["run", "--model", "RotatE", "--dim", "16", "--no-transfer", "--lr", "0.01"])
    config = kg_cli.engine_config(args, base={"model": {"dim": 48}, "train": {"max_epochs": 5}})
    assert (config.model.name, config.model.dim, config.train.max_epochs, config.train.lr) == ("rotate", 16, 5, 0.01)
    assert config.lkge.transfer is False and config.train.seed == RunConfig().train.seed


def test_pipeline_config_embeds_the_engine_config() -> None:
    assert PipelineConfig().engine == RunConfig()  # one source of defaults: dim, seed, device, init_scale, ...
    assert PipelineConfig().run_config(strategy="finetune", model="rotate").model.dim == RunConfig().model.dim
    assert "dim" not in PipelineConfig.model_fields and "train" not in PipelineConfig.model_fields


def test_pipeline_config_reads_parameters_saved_with_the_old_flat_keys() -> None:
    config = PipelineConfig.model_validate({"dim": 32, "protocol": "lkge-paper", "train": {"max_epochs": 7}})
    assert (config.engine.model.dim, config.engine.protocol, config.engine.train.max_epochs) == (32, "lkge-paper", 7)
    with pytest.raises(ValidationError, match="given twice"):
        PipelineConfig.model_validate({"dim": 32, "engine": {"model": {"dim": 64}}})


@pytest.mark.parametrize(
    ("engine", "message"),
    [({"strategy": "nope"}, "unknown strategy"), ({"protocol": "x"}, "unknown protocol"),
     ({"model": {"name": "y"}}, "unknown model")],
)  # fmt: skip
def test_pipeline_config_validates_names(engine: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PipelineConfig.model_validate({"engine": engine})
    with pytest.raises(ValidationError, match="unknown strategy"):
        PipelineConfig().run_config(strategy="nope", model="transe")
