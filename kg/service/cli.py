"""The ``evergraph`` command line: ``example``, ``train``, ``evaluate``, and the knowledge commands ``guide``,
``ask`` and ``serve``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

from evergraph.kg.engine.config import EvaluationConfig, LKGEConfig, ModelConfig, RunConfig, TrainConfig
from evergraph.kg.engine.events import is_event
from evergraph.kg.errors import EvergraphError
from evergraph.kg.settings import load_settings

console = Console(width=None if sys.stdout.isatty() else 150)
logger = logging.getLogger("evergraph")


def _rankings(snapshots: list[dict[str, Any]]) -> str:
    """The rankings of the entries (``full`` when none says: older runs), e.g. ``full`` or ``full / sampled-1000``."""
    seen = dict.fromkeys(s.get("ranking", "full") for s in snapshots)
    return " / ".join(seen) or "full"


def metrics_table(metrics: dict[str, Any]) -> Table:
    """One row per snapshot: stream metrics after it, MRR of every test set seen so far, timings."""
    snaps = metrics["snapshots"]
    table = Table(
        title=f"{metrics['strategy']} / {metrics['model']}: stream metrics after each snapshot and MRR on each test "
        f"set Tj (filtered, realistic ranks, protocol {metrics['protocol']}, {_rankings(snaps)} ranking)"
    )
    for col in ("snapshot", "epochs", "train s", "eval s", "MRR", "H@1", "H@3", "H@10"):
        table.add_column(col, justify="right")
    for j in range(len(snaps)):
        table.add_column(f"MRR T{j}", justify="right")
    for s in snaps:
        st = s["stream"]
        per = {p["snapshot"]: p["mrr"] for p in s["per_test_set"]}
        table.add_row(
            str(s["snapshot"]),
            str(s.get("epochs", "")),
            f"{s.get('train_seconds', 0):.1f}",
            f"{s.get('eval_seconds', 0):.1f}",
            f"{st['mrr']:.4f}",
            f"{st['hits@1']:.4f}",
            f"{st['hits@3']:.4f}",
            f"{st['hits@10']:.4f}",
            *[f"{per[j]:.4f}" if j in per else "" for j in range(len(snaps))],
        )
    return table


SOURCE_FORMATS = ("auto", "lkge", "dumps")
"""``--format`` choices: :data:`evergraph.kg.engine.sources.FORMATS` (not imported here: the CLI starts light)."""


def add_format_option(command: argparse.ArgumentParser) -> None:
    """``--format`` of a command that reads a source folder (``train``, ``run``)."""
    command.add_argument(
        "--format",
        choices=SOURCE_FORMATS,
        default="auto",
        help="how to read --data: lkge (numbered snapshot folders 0/, 1/, ...), dumps (a folder of full exports "
        ".nt/.ttl/.tsv/.csv, diffed), or auto (default: DIR/source.json, else what the folder holds); checked "
        "before any work and, when the folder would be read another way, recorded in DIR/source.json so that "
        "every later run and the scheduled deployment read it the same way",
    )


def apply_format(data: Path, *, format: str) -> None:
    """Check (and record, see :func:`evergraph.kg.engine.sources.pin_format`) ``--format`` before any work."""
    from evergraph.kg.engine.sources import pin_format

    recorded = pin_format(data, format=format)
    if recorded is not None:
        console.print(f"format {format} recorded in {recorded}", highlight=False)


def _train(args: argparse.Namespace) -> int:
    from evergraph.kg.engine.distributed import current_group, shutdown
    from evergraph.kg.engine.lifelong import LifelongRun

    config = engine_config(args)
    follower = int(os.environ.get("RANK", "0")) > 0  # a torchrun job's other processes: rank 0 reports
    if follower:
        logging.getLogger("evergraph").setLevel(logging.WARNING)
    else:
        apply_format(args.data, format=args.format)
    run = LifelongRun(data=args.data, out=args.out, config=config, show_progress=not (args.quiet or follower))
    try:
        metrics = run.run(upto=args.upto)
    finally:
        group = current_group()
        shutdown()
    if group is not None and not group.is_main:
        return 0
    console.print(metrics_table(metrics))
    console.print(f"metrics written to {run.paths.metrics}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from evergraph.kg.engine.evaluation import evaluate_stream
    from evergraph.kg.engine.ingest import GrowingKG
    from evergraph.kg.engine.run_files import RunPaths, load_model_checkpoint

    paths = RunPaths(Path(args.run))
    if not paths.config.exists():
        raise EvergraphError(f"{args.run} is not a run directory (no config.json); run `evergraph train` first")
    stored = json.loads(paths.config.read_text())
    data = Path(args.data or stored["data"])
    done = sorted(int(p.stem.split("-")[1]) for p in paths.checkpoints.glob("snapshot-*.pt"))
    if not done:
        raise EvergraphError(f"{args.run} has no finished snapshot yet")
    index = done[-1] if args.snapshot is None else args.snapshot
    if index not in done:
        raise EvergraphError(f"snapshot {index} is not finished in {args.run}; finished: {done}")
    protocol = args.protocol or stored["protocol"]
    kg = GrowingKG.load(data, upto=index)
    model, _ = load_model_checkpoint(paths.snapshot_checkpoint(index))
    sample = EvaluationConfig.model_validate(stored.get("evaluation", {})).sample_for(kg.snapshots[index].num_entities)
    result = evaluate_stream(
        score_fn=model.score_fn(),
        snapshots=kg.snapshots,
        upto=index,
        protocol=protocol,
        sample=sample,
        candidate_score_fn=model.candidate_score_fn(),
    )
    out = {
        "strategy": stored["strategy"],
        "model": stored["model"]["name"],
        "protocol": protocol,
        "snapshots": [{"snapshot": index, **result.to_dict()}],
    }
    target = paths.out / f"evaluation-{protocol}-snapshot-{index}.json"
    from evergraph.kg.engine.atomic import write_json

    write_json(target, out)
    console.print(metrics_table(out))
    console.print(f"written to {target}")
    return 0


def _example(args: argparse.Namespace) -> int:
    from evergraph.kg.engine.example import write_example_dataset

    path = write_example_dataset(args.out, seed=args.seed, scale=args.scale)
    console.print(f"example growing KG written to {path}")
    return 0


def _default(model: type[BaseModel], name: str) -> str:
    field = model.model_fields[name]
    return f"{field.description} (default {field.default})"


class _Names:
    """Lazy argparse ``choices``: the registry is imported only when the option is checked or its help shown."""

    def __init__(self, load: Callable[[], list[str]]) -> None:
        self._load = load

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __contains__(self, name: object) -> bool:
        return name in self._load()


ENGINE_OPTIONS: tuple[tuple[str, str | None, str, type], ...] = (
    # flag, RunConfig section (None = top level), field, type
    ("--dim", "model", "dim", int),
    ("--init-scale", "model", "init_scale", float),
    ("--seed", "train", "seed", int),
    ("--max-epochs", "train", "max_epochs", int),
    ("--lr", "train", "lr", float),
    ("--optimizer", "train", "optimizer", str),
    ("--batch-size", "train", "batch_size", int),
    ("--min-batches", "train", "min_batches", int),
    ("--negatives", "train", "num_negatives", int),
    ("--margin", "train", "margin", float),
    ("--adversarial-temperature", "train", "adversarial_temperature", float),
    ("--eval-every", "train", "eval_every", int),
    ("--patience", "train", "patience", int),
    ("--min-delta", "train", "min_delta", float),
    ("--checkpoint-every", "train", "checkpoint_every", int),
    ("--eval-block-size", "train", "eval_block_size", int),
    ("--reconstruction-weight", "lkge", "reconstruction_weight", float),
    ("--regularization-weight", "lkge", "regularization_weight", float),
    ("--mae-entities-per-batch", "lkge", "mae_entities_per_batch", int),
    ("--mae-neighbours", "lkge", "mae_neighbours", int),
    ("--transfer-rounds", "lkge", "transfer_rounds", int),
    ("--replay-weight", "lkge", "replay_weight", float),
    ("--replay-share", "lkge", "replay_share", float),
    ("--full-ranking-max-entities", "evaluation", "full_ranking_max_entities", int),
    ("--eval-sample-size", "evaluation", "sample_size", int),
)
"""Engine options of ``train`` and ``run`` besides the names, ``--device`` and ``--no-transfer``; help and
defaults come from the :mod:`evergraph.kg.engine.config` fields (the one source of defaults)."""
_SECTIONS: dict[str | None, type[BaseModel]] = {
    None: RunConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "lkge": LKGEConfig,
    "evaluation": EvaluationConfig,
}


def add_engine_options(command: argparse.ArgumentParser) -> None:
    """Add every engine option (strategy, model, protocol, device and the :data:`ENGINE_OPTIONS`) to ``command``;
    ``train`` and ``run`` both call this, so they accept the same options. Names are checked against their
    registries while parsing (before any work); an option left out is ``None`` (the config's default applies)."""
    from evergraph.kg.engine.config import model_names, protocol_names, strategy_names

    group = command.add_argument_group("engine options (defaults from the engine's RunConfig)")
    for flag, field, load, section in (
        ("--strategy", "strategy", strategy_names, None),
        ("--model", "name", model_names, "model"),
        ("--protocol", "protocol", protocol_names, None),
    ):
        default = _SECTIONS[section].model_fields[field].default
        group.add_argument(
            flag,
            default=None,
            type=str.lower,
            choices=_Names(load),
            metavar="NAME",
            help=f"one of %(choices)s (default {default})",
        )
    group.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"], help=_default(TrainConfig, "device"))
    for flag, section, field, kind in ENGINE_OPTIONS:
        group.add_argument(flag, type=kind, default=None, help=_default(_SECTIONS[section], field))
    group.add_argument("--no-transfer", action="store_true", help="lkge: new rows start at random, not transferred")


def engine_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The engine options given on the command line, as a partial :class:`RunConfig` dict (nothing for options
    left out)."""
    given: dict[str, Any] = {"model": {}, "train": {}, "lkge": {}, "evaluation": {}}
    for name, value in (("strategy", args.strategy), ("protocol", args.protocol)):
        if value is not None:
            given[name] = value
    if args.model is not None:
        given["model"]["name"] = args.model
    if args.device is not None:
        given["train"]["device"] = args.device
    for flag, section, field, _ in ENGINE_OPTIONS:
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            given[section or ""][field] = value
    if args.no_transfer:
        given["lkge"]["transfer"] = False
    return given


def engine_config(args: argparse.Namespace, *, base: dict[str, Any] | None = None) -> RunConfig:
    """``base`` (a partial :class:`RunConfig` dict, default empty) with the command line's engine options on top,
    validated (unknown names and bad values are an :class:`EvergraphError` naming the option)."""
    from pydantic import ValidationError

    merged: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in (base or {}).items()}
    for key, value in engine_overrides(args).items():
        if isinstance(value, dict):
            merged[key] = {**merged.get(key, {}), **value}
        else:
            merged[key] = value
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as error:
        raise EvergraphError(f"bad engine options: {error}") from None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("evergraph")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown (not installed)"


def build_parser(*, extensions: Sequence[Callable[[argparse._SubParsersAction], None]] = ()) -> argparse.ArgumentParser:
    """The ``evergraph`` parser; each of ``extensions`` (default none) adds sub-commands of packages that build
    on ``kg`` (the pipeline's ``run``/``up``/``rollback``), so ``kg`` never imports them."""
    parser = argparse.ArgumentParser(prog="evergraph", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"evergraph {_version()}", help="print the version")
    sub = parser.add_subparsers(dest="command", required=True, help="the command to run (COMMAND -h for its help)")

    ex = sub.add_parser("example", help="write the small example growing KG")
    ex.add_argument("--out", required=True, type=Path, help="directory to write (0/, 1/, ... snapshots)")
    ex.add_argument("--seed", type=int, default=0, help="random seed of the generated graph (default 0)")
    ex.add_argument("--scale", type=float, default=1.0, help="size factor: 0.5 = about half the facts (default 1)")
    ex.set_defaults(func=_example)

    tr = sub.add_parser("train", help="learn every snapshot of a dataset (resumes an interrupted --out)")
    tr.add_argument(
        "--data", required=True, type=Path, help="dataset dir: 0/, 1/, ... snapshots, or a folder of full exports"
    )
    tr.add_argument("--out", required=True, type=Path, help="run directory (metrics.json, checkpoints, vocab)")
    add_format_option(tr)
    add_engine_options(tr)
    tr.add_argument("--upto", type=int, default=None, help="stop after this snapshot (default: all)")
    tr.add_argument("--quiet", action="store_true", help="no progress bars")
    tr.set_defaults(func=_train)

    from evergraph.kg.engine.config import protocol_names

    ev = sub.add_parser("evaluate", help="evaluate a saved run after one of its snapshots")
    ev.add_argument("--run", required=True, type=Path, help="run directory of `evergraph train` (its --out)")
    ev.add_argument("--data", type=Path, default=None, help="default: the run's data")
    ev.add_argument(
        "--protocol",
        default=None,
        type=str.lower,
        choices=_Names(protocol_names),
        metavar="NAME",
        help="one of %(choices)s (default: the run's protocol)",
    )
    ev.add_argument("--snapshot", type=int, default=None, help="default: the last finished one")
    ev.set_defaults(func=_evaluate)
    _add_knowledge_commands(sub)
    from evergraph.kg.service.trust_cli import add_trust_commands

    add_trust_commands(sub)  # check, explain (issue 10)
    for extend in extensions:
        extend(sub)
    return parser


def _add_knowledge_commands(sub: argparse._SubParsersAction) -> None:
    def source(command: argparse.ArgumentParser) -> None:
        command.add_argument("question", help="the question, in quotes")
        command.add_argument("--home", default=None, help="Evergraph home (default $EVERGRAPH_HOME or ./.evergraph)")
        command.add_argument("--url", default=None, help="ask a running `evergraph serve` instead of the home")
        command.add_argument("--token-env", default=None, help="env var holding the server's bearer token (--url)")
        command.add_argument("--hops", type=int, choices=[1, 2], default=None, help="1 or 2 (default: two-hop paths)")
        command.add_argument("--encoder", default=None, help="linking text encoder: hashing (default) | minilm")
        command.add_argument(
            "--relation-encoder", default=None, help="relation encoder (default auto: minilm if installed)"
        )
        command.add_argument("--json", action="store_true", help="print the whole result as JSON")

    guide = sub.add_parser("guide", help="the cited knowledge context for a question (no LLM needed)")
    source(guide)
    guide.set_defaults(func=_guide)
    ask = sub.add_parser(
        "ask",
        help="answer a question with an OpenAI-compatible LLM guided by the graph "
        "(EVERGRAPH_LLM_BASE_URL, EVERGRAPH_LLM_MODEL, OPENAI_API_KEY)",
    )
    source(ask)
    ask.add_argument("--llm-base-url", default=None, help="default $EVERGRAPH_LLM_BASE_URL, e.g. http://host/v1")
    ask.add_argument("--llm-model", default=None, help="default $EVERGRAPH_LLM_MODEL")
    ask.add_argument("--llm-key-env", default=None, help="env var holding the API key (default OPENAI_API_KEY)")
    ask.set_defaults(func=_ask)

    serve = sub.add_parser("serve", help="serve the champion's knowledge over HTTP, following promotions")
    serve.add_argument("--home", default=None, help="Evergraph home (default $EVERGRAPH_HOME or ./.evergraph)")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="default 8000")
    serve.add_argument("--token-env", default=None, help="env var holding a bearer token the clients must send")
    serve.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback --host without a token (a trusted network)"
    )
    serve.add_argument(
        "--max-body-bytes", type=int, default=None, help="largest request body accepted (default 65536; 413 above)"
    )
    serve.add_argument("--poll", type=float, default=1.0, help="seconds between champion checks (default 1)")
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes sharing the port, each following the champion (default: the CPU cores)",
    )
    serve.add_argument("--hops", type=int, choices=[1, 2], default=None, help="guide hops, 1 or 2 (default 2)")
    serve.add_argument("--encoder", default=None, help="linking text encoder: hashing (default) | minilm")
    serve.add_argument("--relation-encoder", default=None, help="relation encoder (default auto: minilm if installed)")
    serve.set_defaults(func=_serve)


def _token(name: str | None) -> str | None:
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise EvergraphError(f"--token-env {name}: the environment variable {name} is not set (or empty); set it")
    return value


def _knowledge_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`evergraph.kg.knowledge.knowledge.Knowledge` options given on the command line (--hops, the
    encoders)."""
    from evergraph.kg.knowledge.knowledge import knowledge_options

    return knowledge_options(hops=args.hops, encoder=args.encoder, relation_encoder=args.relation_encoder)


def _knowledge_client(args: argparse.Namespace, *, chat: Any = None) -> Any:
    from evergraph.kg.service.client import KnowledgeClient

    options = _knowledge_options(args)
    if args.url:
        if options:
            raise EvergraphError("--hops and the encoders are settings of the server (evergraph serve), not of --url")
        return KnowledgeClient.remote(args.url, token=_token(args.token_env))
    if chat is not None:
        options["chat"] = chat
    return KnowledgeClient.local(args.home, watch=False, **options)


def _print_guide(result: Any) -> None:
    linked = ", ".join(f"{e.name} ({e.score:.2f})" for e in result.entities) or "none"
    relations = ", ".join(f"{r.name} ({r.score:.2f})" for r in result.relations) or "none"
    console.print(f"model version {result.version}, snapshot {result.snapshot}", highlight=False)
    console.print(f"entities: {linked}\nrelations: {relations}", highlight=False)
    if result.abstained:
        console.print(f"[yellow]abstained[/yellow]: {result.reason}\n{result.message}", highlight=False)
    else:
        console.print(result.context, highlight=False, markup=False)


def _guide(args: argparse.Namespace) -> int:
    with _knowledge_client(args) as client:
        result = client.guide(args.question)
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        _print_guide(result)
    return 0


def _ask(args: argparse.Namespace) -> int:
    chat = None
    if not args.url:
        from evergraph.kg.knowledge.llm import ChatConfig

        overrides = {"base_url": args.llm_base_url, "model": args.llm_model, "api_key_env": args.llm_key_env}
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if overrides or load_settings().llm_base_url:  # else: fine while the guide abstains
            chat = ChatConfig.from_env(**overrides)
    with _knowledge_client(args, chat=chat) as client:
        answer = client.ask(args.question)
    if args.json:
        print(answer.model_dump_json(indent=2))
        return 0
    if answer.abstained:
        console.print(f"[yellow]abstained[/yellow] (no LLM call): {answer.guide.reason}", highlight=False)
    console.print(answer.answer, highlight=False, markup=False)
    for fact in answer.facts:
        console.print(f"[{fact.citation}] {fact.text} ({fact.kind})", highlight=False, markup=False)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from evergraph.kg.service.guard import check_exposure
    from evergraph.kg.service.server import serve
    from evergraph.kg.service.serving import ChampionWatcher

    options = _knowledge_options(args)
    if load_settings().llm_base_url:
        from evergraph.kg.knowledge.llm import ChatConfig

        options["chat"] = ChatConfig.from_env()
    token = _token(args.token_env)
    check_exposure(host=args.host, token=token, insecure=args.insecure)  # before loading anything
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    if workers < 1:
        raise EvergraphError(f"--workers must be at least 1, got {workers}")
    if workers > 1:
        return _serve_workers(args, workers=workers, token=token)
    watcher = ChampionWatcher(args.home, poll_interval=args.poll, **options).start()
    console.print(
        f"serving model version {watcher.current().version} on http://{args.host}:{args.port} "
        f"(docs at /docs{', bearer token required' if token else ''}); following {watcher.home.champion_pointer}",
        highlight=False,
    )
    try:
        limits = {} if args.max_body_bytes is None else {"max_body_bytes": args.max_body_bytes}
        serve(watcher.current, host=args.host, port=args.port, token=token, insecure=args.insecure, **limits)
    finally:
        watcher.stop()
    return 0


def _serve_workers(args: argparse.Namespace, *, workers: int, token: str | None) -> int:
    """``serve --workers N`` with N > 1: uvicorn worker processes, each loading and following the champion."""
    from evergraph.kg.service.server import WorkerSettings, serve_workers
    from evergraph.kg.store.bundle import read_pointer
    from evergraph.kg.store.home import EvergraphHome

    home = EvergraphHome.resolve(args.home)
    pointer = read_pointer(home.champion_pointer)
    if pointer is None:  # fail here, once, rather than in every worker
        raise EvergraphError(f"no champion yet ({home.champion_pointer} does not exist): run `evergraph run` first")
    settings = WorkerSettings(
        home=str(home.root),
        poll=args.poll,
        hops=args.hops,
        encoder=args.encoder,
        relation_encoder=args.relation_encoder,
        token_env=args.token_env,
        chat=bool(load_settings().llm_base_url),
        **({} if args.max_body_bytes is None else {"max_body_bytes": args.max_body_bytes}),
    )
    console.print(
        f"serving model version {pointer['version']} on http://{args.host}:{args.port} with {workers} worker "
        f"processes (docs at /docs{', bearer token required' if token else ''}); each follows "
        f"{home.champion_pointer}",
        highlight=False,
    )
    serve_workers(settings, workers=workers, host=args.host, port=args.port, insecure=args.insecure)
    return 0


class ConsoleLogHandler(logging.Handler):
    """Log records on stderr, one unwrapped line each (``warning:``/``error:`` in front of those levels). Unless
    ``verbose``, only events (:mod:`evergraph.kg.engine.events`) and warnings pass: the one line per event a
    person cares about; ``-v`` shows every record (debug included)."""

    def __init__(self, *, verbose: bool) -> None:
        super().__init__(level=logging.DEBUG if verbose else logging.INFO)
        self.verbose = verbose
        self.console = Console(stderr=True, highlight=False)
        self.setFormatter(logging.Formatter("%(message)s"))

    def filter(self, record: logging.LogRecord) -> bool:
        return (self.verbose or record.levelno >= logging.WARNING or is_event(record)) and super().filter(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = Text(self.format(record))
            if record.levelno >= logging.WARNING:
                level = record.levelname.lower()
                text = Text.assemble((f"{level}: ", "yellow" if level == "warning" else "red"), text)
            elif self.verbose:
                text = Text.assemble((f"{record.name}: ", "dim"), text)
            self.console.print(text, soft_wrap=True)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def configure_logging(*, verbose: bool) -> None:
    """The console logging of the ``evergraph`` command: :class:`ConsoleLogHandler` on the root logger (replacing
    one installed before), INFO (DEBUG when ``verbose``); library chatter (FAISS's loader, httpx's one line per
    request) only with ``verbose``."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, ConsoleLogHandler)]:
        root.removeHandler(handler)
    root.addHandler(ConsoleLogHandler(verbose=verbose))
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("httpx", "httpcore", "faiss", "urllib3", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


def main(argv: Sequence[str] | None = None, *, parser: argparse.ArgumentParser | None = None) -> int:
    """Run one command (``argv`` defaults to ``sys.argv[1:]``); returns the exit status (2 on an Evergraph
    error, printed without a trace)."""
    args = (parser or build_parser()).parse_args(argv)
    configure_logging(verbose=args.verbose)
    try:
        return args.func(args)
    except EvergraphError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
