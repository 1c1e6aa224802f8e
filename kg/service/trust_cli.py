"""The trust commands of ``evergraph``: ``check`` (plausibility of facts against the champion) and ``explain``
(the evidence for a fact)."""

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
        help="the source the champion learned: fits its plausibility filter when the home has none yet",
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
