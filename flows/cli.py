"""The ``evergraph`` command: the engine's commands (``example``, ``train``, ``evaluate``) plus the pipeline's
``run`` (the main job), ``rollback`` and ``up`` (local Prefect server, worker and MLflow UI).

Prefect reads its settings when first imported, so this module sets the embedded defaults (PREFECT_HOME
inside the Evergraph home, no analytics, a generous ephemeral start-up timeout) before importing it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from evergraph.kg.errors import EvergraphError
from evergraph.kg.service import cli as kg_cli
from evergraph.kg.store.home import EvergraphHome

PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "evergraph",
    # evergraph logs outside a flow run (writing the example graph) stay on the console, without a warning
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    # no tqdm bar per MLflow artifact download, no usage data sent
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_LOGGING_LEVEL": "WARNING",  # not "Creating initial MLflow database tables..." on every new home
}

LIFELONG_DEPLOYMENT = "evergraph-lifelong/evergraph-lifelong"
"""``FLOW/DEPLOYMENT``: the flow ``evergraph-lifelong`` (``flows/lifelong.py``) deployed as ``evergraph-lifelong``
(``prefect.yaml``), the name ``prefect deployment run`` takes."""


def prefect_environment(home: EvergraphHome) -> dict[str, str]:
    """Environment for Prefect processes of ``home``: its PREFECT_HOME and the embedded defaults (values already
    in the environment win). Creates PREFECT_HOME: Prefect's ephemeral API cannot start in a missing directory."""
    env = {"PREFECT_HOME": str(home.prefect_home), "EVERGRAPH_HOME": str(home.root), **PREFECT_DEFAULTS}
    env = {key: os.environ.get(key, value) for key, value in env.items()}
    Path(env["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)
    return env


def _summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title=f"lineage {summary['lineage']}")
    for column in ("snapshot", "version", "alias", "stream MRR"):
        table.add_column(column, justify="right" if column != "alias" else "left")
    for row in summary["created"]:
        table.add_row(str(row["snapshot"]), row["version"], row["alias"], f"{row['stream_mrr']:.4f}")
    for snapshot in summary["unchanged"]:
        table.add_row(str(snapshot), "-", "unchanged", "-")
    return table


def _run(args: argparse.Namespace) -> int:
    home = EvergraphHome.resolve(args.home)
    os.environ.update(prefect_environment(home))
    from evergraph.flows.lifelong import lifelong_pipeline  # after the environment is set
    from evergraph.flows.params import PipelineConfig
    from evergraph.kg.engine.example import EXAMPLE_DIM, EXAMPLE_THREADS, EXAMPLE_TRAIN, write_example_dataset

    source = args.data
    example = source is None  # the example graph gets demo-sized settings (flags still win)
    if example:
        source = home.root / "example-data"
        if not (source / "0").exists():
            write_example_dataset(source, seed=0)
            kg_cli.console.print(f"example growing KG written to {source}")
    demo = {"train": dict(EXAMPLE_TRAIN), "model": {"dim": EXAMPLE_DIM}} if example else {}
    engine = kg_cli.engine_config(args, base=demo)  # names checked against their registries before any work
    config = PipelineConfig.model_validate(
        {
            "home": str(home.root),
            "engine": engine,
            **({"torch_threads": EXAMPLE_THREADS} if example else {}),
            "show_progress": not args.quiet,
            "registry": {
                k: v
                for k, v in {"tracking_uri": args.tracking_uri, "tolerance": args.tolerance}.items()
                if v is not None
            },
            "quarantine": args.quarantine,
            "promote_anyway": args.promote_anyway,
        }
    )
    from evergraph.flows.preflight import check_before_run
    from evergraph.flows.quiet import quiet_expected_errors

    strategy, model = engine.strategy, engine.model.name
    kg_cli.apply_format(source, format=args.format)  # checked (and recorded in source.json) before any work
    check_before_run(source=source, strategy=strategy, model=model, config=config)  # before Prefect starts
    from evergraph.registry import prepare_store

    prepare_store(config=config.registry, home=home)  # a new home's MLflow database is made while Prefect starts
    kg_cli.console.print(
        f"lifelong pipeline: {strategy}/{model} on {source}"
        f"{' (demo-sized settings for the example graph)' if example else ''}; starting a temporary Prefect API",
        highlight=False,
    )
    with quiet_expected_errors():  # an EvergraphError prints once, as `error: ...`, not as Prefect tracebacks
        summary = lifelong_pipeline(source=str(source), strategy=strategy, model=model, config=config)
    kg_cli.console.print(_summary_table(summary))
    champion = summary["champion"]
    if champion is None:
        kg_cli.console.print("no champion yet")
    else:
        kg_cli.console.print(
            f"champion: version {champion} (snapshot {summary['champion_snapshot']}), "
            f"served from {home.champion_pointer}"
        )
    kg_cli.console.print(f"MLflow store: {home.tracking_uri}  (browse it with `evergraph up`)")
    from evergraph.kg.store.quarantine import QuarantineStore

    held = sum(fact.status == "held" for fact in QuarantineStore(home.root).facts())
    if held:
        kg_cli.console.print(
            f"{held} new fact(s) wait in quarantine, not learned: `evergraph quarantine list --home {home.root}`",
            highlight=False,
        )
    return 0


def _rollback(args: argparse.Namespace) -> int:
    home = EvergraphHome.resolve(args.home)
    os.environ.update(prefect_environment(home))
    from evergraph.flows.quiet import quiet_expected_errors
    from evergraph.flows.rollback import rollback_champion

    with quiet_expected_errors():  # an EvergraphError prints once, as `error: ...`
        result = rollback_champion(version=args.version, home=str(home.root))
    kg_cli.console.print(f"champion is now version {result['version']} (snapshot {result['snapshot']})")
    return 0


def _up(args: argparse.Namespace) -> int:
    from evergraph.flows.services import LocalServices

    home = EvergraphHome.resolve(args.home)
    services = LocalServices(
        home=home,
        prefect_port=args.prefect_port,
        mlflow_port=args.mlflow_port,
        knowledge_port=None if args.no_knowledge else args.knowledge_port,
        environment=prefect_environment(home),
        deploy=not args.no_deploy,
    )
    return services.run_until_stopped()


def trigger_parameters(*, deployed: dict[str, Any], home: EvergraphHome, source: Path) -> dict[str, Any]:
    """The deployment's own parameters with ``source`` and ``config.home`` replaced by absolute paths (the
    worker's working directory does not matter then); every other setting stays as deployed."""
    config = dict(deployed.get("config") or {})
    config["home"] = str(home.root)
    return {**deployed, "source": str(source.expanduser().resolve()), "config": config}


def _trigger(args: argparse.Namespace) -> int:
    from evergraph.kg.engine.sources.dumps import dump_files

    home = EvergraphHome.resolve(args.home)
    source = Path(args.data) if args.data else home.root / "example-data"
    if not (source / "0").is_dir() and not (source.is_dir() and dump_files(source)):  # lkge folders or exports
        raise EvergraphError(
            f"{source} holds no snapshot 0/ and no export (.nt, .ttl, .tsv, .csv): give --data DIR, or run "
            f"`evergraph run --home {home.root}` once (it writes the example graph there)"
        )
    api = args.api_url or os.environ.get("PREFECT_API_URL") or f"http://127.0.0.1:{args.prefect_port}/api"
    os.environ.update({**prefect_environment(home), "PREFECT_API_URL": api})
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(LIFELONG_DEPLOYMENT)
            parameters = trigger_parameters(deployed=deployment.parameters, home=home, source=source)
            run = client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
    except httpx.HTTPError as error:
        raise EvergraphError(
            f"no Prefect API answers at {api} ({type(error).__name__}): start it with `evergraph up --home "
            f"{home.root}` in another terminal, or pass --api-url"
        ) from None
    except ObjectNotFound:
        raise EvergraphError(
            f"the Prefect API at {api} has no deployment {LIFELONG_DEPLOYMENT}: `evergraph up` deploys it "
            "(unless --no-deploy), or run `prefect --no-prompt deploy --all` from the project root"
        ) from None
    ui = api.removesuffix("/api")
    kg_cli.console.print(
        f"flow run {run.name} of {LIFELONG_DEPLOYMENT} scheduled on {source}; the worker of `evergraph up` runs "
        f"it: {ui}/runs/flow-run/{run.id}",
        highlight=False,
    )
    return 0


def add_pipeline_commands(sub: argparse._SubParsersAction) -> None:
    """``run``, ``rollback`` and ``up``."""
    run = sub.add_parser("run", help="the main job: the lifelong pipeline (Prefect + MLflow + FAISS) on a source")
    run.add_argument("--data", type=Path, default=None, help="snapshots dir (default: the example KG in the home)")
    run.add_argument("--home", default=None, help="Evergraph home (default $EVERGRAPH_HOME or ./.evergraph)")
    kg_cli.add_format_option(run)
    kg_cli.add_engine_options(run)  # the same engine options as `evergraph train`
    run.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: SQLite in the home)")
    run.add_argument("--tolerance", type=float, default=None, help="allowed MRR drop on old test sets (0.05)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument(
        "--quarantine",
        choices=["off", "flag", "hold"],
        default="flag",
        help="new facts the champion finds implausible: flag (default: learn everything, report suspects), hold "
        "(keep them out of training and the known facts until `evergraph quarantine release`), off",
    )
    run.add_argument(
        "--promote-anyway",
        action="store_true",
        help="promote new versions even when the gate cannot compare them with the champion or they fail it "
        "(logged, recorded in the gate artifact)",
    )
    run.set_defaults(func=_run)

    back = sub.add_parser("rollback", help="serve an earlier model version again (moves the champion alias)")
    back.add_argument("version", help="the registered model version to serve again, e.g. 3")
    back.add_argument("--home", default=None, help="Evergraph home (default $EVERGRAPH_HOME or ./.evergraph)")

    back.set_defaults(func=_rollback)

    up = sub.add_parser(
        "up", help="start a local Prefect server, a process worker, the MLflow UI and the knowledge server"
    )
    up.add_argument("--home", default=None, help="Evergraph home (default $EVERGRAPH_HOME or ./.evergraph)")
    up.add_argument("--prefect-port", type=int, default=4200, help="Prefect server port (default 4200)")
    up.add_argument("--mlflow-port", type=int, default=5000, help="MLflow UI port (default 5000)")
    up.add_argument("--knowledge-port", type=int, default=8000, help="evergraph serve's port, when a champion exists")
    up.add_argument("--no-knowledge", action="store_true", help="do not start the knowledge server")
    up.add_argument("--no-deploy", action="store_true", help="do not deploy prefect.yaml's deployments")
    up.set_defaults(func=_up)

    trigger = sub.add_parser(
        "trigger", help=f"run the {LIFELONG_DEPLOYMENT} deployment through the Prefect API of `evergraph up`"
    )
    trigger.add_argument("--home", default=None, help="Evergraph home (default $EVERGRAPH_HOME or ./.evergraph)")
    trigger.add_argument("--data", default=None, help="snapshots dir (default: the example KG in the home)")
    trigger.add_argument("--prefect-port", type=int, default=4200, help="the port `evergraph up` serves Prefect on")
    trigger.add_argument("--api-url", default=None, help="a Prefect API URL (default $PREFECT_API_URL, else the port)")
    trigger.set_defaults(func=_trigger)


def build_parser() -> argparse.ArgumentParser:
    return kg_cli.build_parser(extensions=[add_pipeline_commands])


def main(argv: Sequence[str] | None = None) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per API call is noise on the console
    return kg_cli.main(argv, parser=build_parser())


if __name__ == "__main__":
    sys.exit(main())
