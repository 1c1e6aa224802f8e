"""The ``evergraph`` command line: ``example``, ``train``, ``evaluate``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from kg.config import LKGEConfig, ModelConfig, RunConfig, TrainConfig
from kg.errors import EvergraphError

console = Console(width=None if sys.stdout.isatty() else 150)
logger = logging.getLogger("kg")


def metrics_table(metrics: dict[str, Any]) -> Table:
    """One row per snapshot: stream metrics after it, MRR of every test set seen so far, timings."""
    snaps = metrics["snapshots"]
    table = Table(
        title=f"{metrics['strategy']} / {metrics['model']}: stream metrics after each snapshot and MRR on each test "
        f"set Tj (filtered, realistic ranks, protocol {metrics['protocol']})"
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


def _train(args: argparse.Namespace) -> int:
    from kg.lifelong import LifelongRun

    train = TrainConfig(
        **{
            k: v
            for k, v in {
                "seed": args.seed,
                "device": args.device,
                "max_epochs": args.max_epochs,
                "lr": args.lr,
                "batch_size": args.batch_size,
                "num_negatives": args.negatives,
                "margin": args.margin,
                "eval_every": args.eval_every,
                "patience": args.patience,
                "min_delta": args.min_delta,
                "checkpoint_every": args.checkpoint_every,
            }.items()
            if v is not None
        }
    )
    lkge = LKGEConfig(
        **{
            k: v
            for k, v in {
                "reconstruction_weight": args.reconstruction_weight,
                "regularization_weight": args.regularization_weight,
                "transfer": False if args.no_transfer else None,
            }.items()
            if v is not None
        }
    )
    model = ModelConfig(name=args.model, **({"dim": args.dim} if args.dim else {}))
    config = RunConfig(strategy=args.strategy, protocol=args.protocol, model=model, train=train, lkge=lkge)
    run = LifelongRun(data=args.data, out=args.out, config=config, show_progress=not args.quiet)
    metrics = run.run(upto=args.upto)
    console.print(metrics_table(metrics))
    console.print(f"metrics written to {run.paths.metrics}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from kg.evaluation import evaluate_stream
    from kg.ingest import GrowingKG
    from kg.lifelong import RunPaths, load_model_checkpoint

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
    result = evaluate_stream(score_fn=model.score_fn(), snapshots=kg.snapshots, upto=index, protocol=protocol)
    out = {
        "strategy": stored["strategy"],
        "model": stored["model"]["name"],
        "protocol": protocol,
        "snapshots": [{"snapshot": index, **result.to_dict()}],
    }
    target = paths.out / f"evaluation-{protocol}-snapshot-{index}.json"
    from kg.atomic import write_json

    write_json(target, out)
    console.print(metrics_table(out))
    console.print(f"written to {target}")
    return 0


def _example(args: argparse.Namespace) -> int:
    from kg.example import write_example_dataset

    path = write_example_dataset(args.out, seed=args.seed, scale=args.scale)
    console.print(f"example growing KG written to {path}")
    return 0


def _default(model: type[BaseModel], name: str) -> str:
    field = model.model_fields[name]
    return f"{field.description} (default {field.default})"


def build_parser(
    *, extensions: Sequence[Callable[[argparse._SubParsersAction], None]] = ()
) -> argparse.ArgumentParser:
    """The ``evergraph`` parser; each of ``extensions`` (default none) adds sub-commands of packages that build
    on ``kg`` (the pipeline's ``run``/``up``/``rollback``), so ``kg`` never imports them."""
    parser = argparse.ArgumentParser(prog="evergraph", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    ex = sub.add_parser("example", help="write the small example growing KG")
    ex.add_argument("--out", required=True, type=Path)
    ex.add_argument("--seed", type=int, default=0)
    ex.add_argument("--scale", type=float, default=1.0)
    ex.set_defaults(func=_example)

    tr = sub.add_parser("train", help="learn every snapshot of a dataset (resumes an interrupted --out)")
    tr.add_argument("--data", required=True, type=Path, help="dataset dir with 0/, 1/, ... snapshots")
    tr.add_argument("--out", required=True, type=Path, help="run directory (metrics.json, checkpoints, vocab)")
    tr.add_argument("--strategy", default="lkge", help="lkge (default) | finetune | retrain")
    tr.add_argument("--model", default="transe", help="transe (default) | rotate")
    tr.add_argument("--protocol", default="all-entities", help="all-entities (default) | lkge-paper")
    tr.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"], help=_default(TrainConfig, "device"))
    tr.add_argument("--seed", type=int, default=None, help=_default(TrainConfig, "seed"))
    tr.add_argument("--max-epochs", type=int, default=None, help=_default(TrainConfig, "max_epochs"))
    tr.add_argument("--dim", type=int, default=None, help=_default(ModelConfig, "dim"))
    tr.add_argument("--lr", type=float, default=None, help=_default(TrainConfig, "lr"))
    tr.add_argument("--batch-size", type=int, default=None, help=_default(TrainConfig, "batch_size"))
    tr.add_argument("--negatives", type=int, default=None, help=_default(TrainConfig, "num_negatives"))
    tr.add_argument("--margin", type=float, default=None, help=_default(TrainConfig, "margin"))
    tr.add_argument("--eval-every", type=int, default=None, help=_default(TrainConfig, "eval_every"))
    tr.add_argument("--patience", type=int, default=None, help=_default(TrainConfig, "patience"))
    tr.add_argument("--min-delta", type=float, default=None, help=_default(TrainConfig, "min_delta"))
    tr.add_argument("--checkpoint-every", type=int, default=None, help=_default(TrainConfig, "checkpoint_every"))
    tr.add_argument(
        "--reconstruction-weight", type=float, default=None, help=_default(LKGEConfig, "reconstruction_weight")
    )
    tr.add_argument(
        "--regularization-weight", type=float, default=None, help=_default(LKGEConfig, "regularization_weight")
    )
    tr.add_argument("--no-transfer", action="store_true", help="lkge: new rows start at random")
    tr.add_argument("--upto", type=int, default=None, help="stop after this snapshot (default: all)")
    tr.add_argument("--quiet", action="store_true", help="no progress bars")
    tr.set_defaults(func=_train)

    ev = sub.add_parser("evaluate", help="evaluate a saved run after one of its snapshots")
    ev.add_argument("--run", required=True, type=Path)
    ev.add_argument("--data", type=Path, default=None, help="default: the run's data")
    ev.add_argument("--protocol", default=None, help="default: the run's protocol")
    ev.add_argument("--snapshot", type=int, default=None, help="default: the last finished one")
    ev.set_defaults(func=_evaluate)
    for extend in extensions:
        extend(sub)
    return parser


def main(argv: Sequence[str] | None = None, *, parser: argparse.ArgumentParser | None = None) -> int:
    """Run one command (``argv`` defaults to ``sys.argv[1:]``); returns the exit status (2 on an Evergraph
    error, printed without a trace)."""
    args = (parser or build_parser()).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )
    try:
        return args.func(args)
    except EvergraphError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
