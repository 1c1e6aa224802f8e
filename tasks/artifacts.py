"""Artifacts task: what the Prefect UI shows for each snapshot (metrics table, model card, links to MLflow)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import (
    create_image_artifact,
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)

from evergraph.kg.engine.run_files import RunPaths, read_entry

METRIC_COLUMNS = ("mrr", "hits@1", "hits@3", "hits@10")


def artifact_key(lineage: str, what: str) -> str:
    """A Prefect artifact key (lowercase letters, digits and dashes only) for ``what`` of ``lineage``; the same
    key across runs groups an artifact's versions in the UI."""
    what = Path(what).stem if what.endswith(".png") else what
    return re.sub(r"[^a-z0-9-]+", "-", f"{lineage}-{what}".lower()).strip("-")[:100]


def metrics_rows(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per test set seen so far, then the stream (test-size-weighted) row."""
    ranking = {"ranking": entry.get("ranking", "full")}  # full, or sampled-N above the size threshold
    rows = [
        {"test set": f"snapshot {m['snapshot']}", **{c: round(m[c], 4) for c in METRIC_COLUMNS}, **ranking}
        for m in entry["per_test_set"]
    ]
    rows.append({"test set": "stream", **{c: round(entry["stream"][c], 4) for c in METRIC_COLUMNS}, **ranking})
    return rows


def model_card(
    *,
    entry: dict[str, Any],
    config: dict[str, Any],
    lineage: str,
    version: str,
    parent_version: str | None,
    run_url: str | None,
    source: str,
) -> str:
    """A markdown model card for one registered snapshot."""
    train = config.get("train", {})
    lines = [
        f"# {lineage} — version {version} (snapshot {entry['snapshot']})",
        "",
        "| | |",
        "|---|---|",
        f"| source | `{source}` |",
        f"| content hash | `{entry['content_hash']}` |",
        f"| parent version | {parent_version or '—'} |",
        f"| strategy / model | {config.get('strategy')} / {config.get('model', {}).get('name')} "
        f"(dim {config.get('model', {}).get('dim')}) |",
        f"| protocol | {config.get('protocol')}, {entry.get('ranking', 'full')} ranking |",
        f"| entities / relations | {entry['num_entities']:,} / {entry['num_relations']:,} |",
        f"| training facts this snapshot | {entry['train_facts']:,} |",
        f"| epochs (best) | {entry['epochs']} ({entry['best_epoch']}) |",
        f"| lr / batch / negatives | {train.get('lr')} / {train.get('batch_size')} / {train.get('num_negatives')} |",
        f"| train / eval seconds | {entry['train_seconds']:.1f} / {entry['eval_seconds']:.1f} |",
        f"| peak memory | {entry['peak_rss_mb']:.0f} MB |",
        f"| valid MRR | {entry['valid_mrr']:.4f} |",
        f"| stream MRR | {entry['stream']['mrr']:.4f} |",
    ]
    if "transfer" in entry:
        lines.append(f"| transfer | {json.dumps(entry['transfer'])} |")
    if run_url:
        lines += ["", f"[MLflow run]({run_url})"]
    return "\n".join(lines) + "\n"


@task(name="publish-artifacts", task_run_name="publish-artifacts-snapshot-{snapshot}")
def publish_snapshot(
    *,
    run_dir: str,
    snapshot: int,
    lineage: str,
    source: str,
    version: str,
    parent_version: str | None,
    run_url: str | None,
    plot_urls: dict[str, str],
) -> None:
    """Table, model card, link and plot artifacts of ``snapshot``'s version (keys grouped by lineage)."""
    paths = RunPaths(run_dir)
    entry = read_entry(paths, snapshot)
    config = json.loads(paths.config.read_text())
    create_table_artifact(
        metrics_rows(entry),
        key=artifact_key(lineage, "metrics"),
        description=f"version {version}, snapshot {snapshot}: MRR/Hits on every test set so far and the stream",
    )
    create_markdown_artifact(
        model_card(
            entry=entry,
            config=config,
            lineage=lineage,
            version=version,
            parent_version=parent_version,
            run_url=run_url,
            source=source,
        ),
        key=artifact_key(lineage, "model-card"),
        description=f"model card of version {version}",
    )
    if run_url:
        create_link_artifact(
            run_url,
            link_text=f"MLflow run of version {version}",
            key=artifact_key(lineage, "mlflow-run"),
            description=f"version {version}'s MLflow run: parameters, per-epoch metrics, weights, index, plots",
        )
    for name, url in plot_urls.items():
        create_image_artifact(url, key=artifact_key(lineage, name), description=f"{name} after snapshot {snapshot}")


def flow_run_link(flow_run_id: str | None) -> str | None:
    """A link to a flow run's page in the Prefect UI, relative to the UI's address (so it works on whichever
    port the UI runs: the home's Prefect database outlives the temporary API of ``evergraph run``)."""
    return None if flow_run_id is None else f"/runs/flow-run/{flow_run_id}"


def run_summary(
    *,
    lineage: str,
    source: str,
    champion: str | None,
    champion_snapshot: int | None,
    rows: list[dict[str, Any]],
) -> str:
    """Markdown for the parent flow run: the champion, then one row per snapshot (``snapshot``, ``version``,
    ``alias`` or ``unchanged``, ``stream_mrr``, ``epochs``, ``flow_run_id`` of its ``snapshot-N`` subflow, whose
    Artifacts tab holds its model card, metrics, gate and plots, and ``run_url`` of its MLflow run; missing
    values are ``None``)."""

    def link(text: str, url: str | None) -> str:
        return f"[{text}]({url})" if url else "—"

    created = sum(1 for r in rows if r.get("alias") not in (None, "unchanged"))
    if champion is None:
        headline = "**No champion yet.**"
    else:
        headline = f"**Champion: version {champion}** (snapshot {champion_snapshot}): the version serving answers."
    lines = [
        f"# {lineage}",
        "",
        headline,
        "",
        f"Source `{source}`: {created} new version(s), {len(rows) - created} snapshot(s) unchanged. Each "
        "snapshot's run holds its model card, metrics table, promotion gate and plots (Artifacts tab).",
        "",
        "| snapshot | version | alias | stream MRR | epochs | snapshot run (artifacts) | MLflow run |",
        "|---:|---:|---|---:|---:|---|---|",
    ]
    for r in rows:
        mrr = "—" if r.get("stream_mrr") is None else f"{r['stream_mrr']:.4f}"
        epochs = "—" if r.get("epochs") is None else str(r["epochs"])
        run = flow_run_link(r.get("flow_run_id"))
        snapshot_run = link(f"snapshot-{r['snapshot']}", None if run is None else f"{run}?tab=Artifacts")
        lines.append(
            f"| {r['snapshot']} | {r.get('version') or '—'} | {r.get('alias') or 'unchanged'} | {mrr} | {epochs} | "
            f"{snapshot_run} | {link('MLflow run', r.get('run_url'))} |"
        )
    return "\n".join(lines) + "\n"
