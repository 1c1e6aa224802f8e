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
    rows = [
        {"test set": f"snapshot {m['snapshot']}", **{c: round(m[c], 4) for c in METRIC_COLUMNS}}
        for m in entry["per_test_set"]
    ]
    rows.append({"test set": "stream", **{c: round(entry["stream"][c], 4) for c in METRIC_COLUMNS}})
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
        f"| protocol | {config.get('protocol')} |",
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
            run_url, link_text=f"MLflow run of version {version}", key=artifact_key(lineage, "mlflow-run")
        )
    for name, url in plot_urls.items():
        create_image_artifact(url, key=artifact_key(lineage, name), description=f"{name} after snapshot {snapshot}")
