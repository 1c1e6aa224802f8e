"""The trust commands of ``evergraph``: ``check`` (plausibility of facts against the champion), ``explain``
(the evidence for a fact) and ``quarantine`` (the facts ``--quarantine hold`` keeps out: list, release, reject)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from evergraph.kg.store.home import EvergraphHome

console = Console()

__all__ = ["add_trust_commands"]


def add_trust_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``check`` and ``explain`` to the ``evergraph`` sub-command parsers ``sub``."""
    check = sub.add_parser(
        "check", help="score a triples file against the champion: probability each fact is true, reason when low"
    )
    check.add_argument("file", type=Path, help="head<TAB>relation<TAB>tail lines")
    check.add_argument("--home", default=None, help="Evergraph home (default $EVERGRAPH_HOME or ./.evergraph)")
    check.add_argument(
        "--data",
        type=Path,
        default=None,
        help="the source the champion learned: fits its plausibility filter when neither its bundle (written by "
        "the pipeline) nor the home holds one yet",
    )
    check.add_argument("--json", action="store_true", help="a JSON list, one object per input fact, in input order")
    check.set_defaults(func=_check)

    explain = sub.add_parser("explain", help="the evidence for a fact: rule paths of known facts and analogies")
    explain.add_argument("head", help="label or name")
    explain.add_argument("relation", help="label or name")
    explain.add_argument("tail", help="label or name")
    explain.add_argument("--home", default=None, help="Evergraph home (default $EVERGRAPH_HOME or ./.evergraph)")
    explain.add_argument("--json", action="store_true", help="print the whole result as JSON")
    explain.set_defaults(func=_explain)
    _add_quarantine_commands(sub)


def _add_quarantine_commands(sub: argparse._SubParsersAction) -> None:
    quarantine = sub.add_parser(
        "quarantine",
        help="the new facts `evergraph run --quarantine hold` kept out of training: list, release (learned with the "
        "next snapshot) or reject (never learned, retracted)",
    )
    actions = quarantine.add_subparsers(dest="action", required=True, help="list | release | reject")
    show = actions.add_parser("list", help="the held facts, with their number, probability and reason")
    show.add_argument("--all", action="store_true", help="every fact ever held, released and rejected ones too")
    for name, text in (
        ("release", "learn the facts after all: they join the next snapshot's new facts"),
        ("reject", "never learn the facts: the next snapshot's bundle retracts them (never cited nor inferred)"),
    ):
        decide = actions.add_parser(name, help=text)
        decide.add_argument("numbers", nargs="*", type=int, metavar="N", help="fact numbers, as `list` shows them")
        decide.add_argument(
            "--fact", nargs=3, metavar=("HEAD", "RELATION", "TAIL"), default=None, help="one fact by its labels"
        )
        decide.add_argument("--all", action="store_true", help="every held fact")
        decide.set_defaults(status="released" if name == "release" else "rejected")
    for command in actions.choices.values():
        command.add_argument("--home", default=None, help="Evergraph home (default $EVERGRAPH_HOME or ./.evergraph)")
        command.add_argument("--json", action="store_true", help="print the facts as a JSON list")
        command.set_defaults(func=_quarantine)


def _check(args: argparse.Namespace) -> int:
    from evergraph.kg.knowledge.plausibility import check_labelled, load_or_fit, read_triples_file
    from evergraph.kg.store.bundle import load_champion

    triples = read_triples_file(args.file)  # a bad file fails before the champion is loaded
    home = EvergraphHome.resolve(args.home)
    bundle = load_champion(home)
    plausibility = load_or_fit(bundle, home_root=home.root, data=args.data)
    rows = check_labelled(bundle, plausibility, triples)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title=f"{args.file}: checked against model version {bundle.version} (snapshot {bundle.snapshot})")
    for column in ("#", "head", "relation", "tail", "probability", "reason"):
        table.add_column(column, overflow="fold")
    for number, row in enumerate(rows, start=1):
        probability = "-" if row["probability"] is None else f"{row['probability']:.3f}"
        style = "red" if row["suspect"] else None
        table.add_row(
            str(number), row["head"], row["relation"], row["tail"], probability, row["reason"] or "", style=style
        )
    console.print(table)
    suspects = sum(row["suspect"] for row in rows)
    console.print(f"{suspects} suspect(s) of {len(rows)} fact(s)", highlight=False)
    return 0


def _explain(args: argparse.Namespace) -> int:
    from evergraph.kg.service.client import KnowledgeClient

    with KnowledgeClient.local(args.home, watch=False) as client:
        result = client.explain(args.head, args.relation, args.tail)
    if args.json:
        print(result.model_dump_json(indent=2))
        return 0
    console.print(f"model version {result.version}: {result.query}", highlight=False)
    if not result.found:
        console.print(f"[yellow]not found[/yellow]: {result.message}", highlight=False)
        return 1
    state = "known" if result.known else "not a known fact"
    console.print(f"{state}; best supporting rule confidence {result.confidence:.2f}", highlight=False)
    if not result.paths:
        console.print("no supporting path of length <= 3 through a mined rule", highlight=False)
    for number, path in enumerate(result.paths, start=1):
        console.print(f"path {number}: {path.rule.text} (confidence {path.rule.confidence:.2f})", highlight=False)
        for fact in path.facts:
            console.print(f"    {fact.text} (known, snapshot {fact.snapshot})", highlight=False, markup=False)
    for analogy in result.analogies:
        console.print(
            f"analogy: {analogy.fact.text} (similarity {analogy.similarity:.2f})", highlight=False, markup=False
        )
    return 0


def _quarantine(args: argparse.Namespace) -> int:
    from evergraph.kg.store.quarantine import QuarantineStore, Selection

    store = QuarantineStore(EvergraphHome.resolve(args.home).root)
    if args.action == "list":
        facts = [f for f in store.facts() if args.all or f.status == "held"]
        title = f"{len(facts)} {'fact(s) ever held' if args.all else 'held fact(s)'} in {store.path}"
    else:
        selection = Selection(ids=args.numbers, fact=None if args.fact is None else tuple(args.fact), all=args.all)
        facts = store.decide(selection, args.status)
        after = "learned with the next snapshot" if args.status == "released" else "retracted by the next snapshot"
        title = f"{args.status} {len(facts)} fact(s) ({after})"
    if args.json:
        print(json.dumps([f.model_dump() for f in facts], indent=2))
        return 0
    table = Table(title=title)
    for column in ("#", "head", "relation", "tail", "probability", "reason", "snapshot", "status"):
        table.add_column(column, overflow="fold")
    for fact in facts:
        probability = "-" if fact.probability is None else f"{fact.probability:.3f}"
        table.add_row(
            str(fact.id),
            fact.head,
            fact.relation,
            fact.tail,
            probability,
            fact.reason or "",
            str(fact.snapshot),
            fact.status,
            style=None if fact.status == "held" else "dim",
        )
    console.print(table)
    if args.action == "list" and not facts:
        console.print("nothing is held", highlight=False)
    return 0
