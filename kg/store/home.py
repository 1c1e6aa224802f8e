"""The Evergraph home: one directory holding everything a deployment keeps between runs.

::

    HOME/mlflow.db            MLflow tracking + model registry (SQLite), the default tracking URI
    HOME/mlartifacts/         MLflow artifacts (weights, vocabularies, indexes, plots) of every run
    HOME/runs/<lineage>/      engine run directories (:class:`kg.LifelongRun` ``OUT``), one per lineage
    HOME/bundles/<version>/   self-contained serving bundles, one per promoted model version
    HOME/champion.json        pointer to the champion's bundle, switched atomically on promotion/rollback
    HOME/prefect/             PREFECT_HOME for the embedded (ephemeral) Prefect API

Serving reads only ``champion.json`` and the bundle it names, never MLflow; training writes everything else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = Path(".evergraph")
"""Default home, relative to the working directory; ``EVERGRAPH_HOME`` or ``--home`` changes it."""


@dataclass(frozen=True)
class EvergraphHome:
    """Paths inside an Evergraph home directory (nothing is created until something is written)."""

    root: Path

    @classmethod
    def resolve(cls, home: str | os.PathLike[str] | None = None) -> EvergraphHome:
        """``home``, else ``$EVERGRAPH_HOME``, else ``./.evergraph``, as an absolute path."""
        from evergraph.kg.settings import load_settings

        chosen = home if home is not None else load_settings().home or DEFAULT_HOME
        return cls(Path(chosen).expanduser().resolve())

    @property
    def tracking_uri(self) -> str:
        """The default MLflow tracking/registry URI: a SQLite file in the home."""
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run_dir(self, lineage: str) -> Path:
        """The engine run directory of one lineage (a source + strategy + model + config)."""
        return self.runs / lineage

    @property
    def bundles(self) -> Path:
        return self.root / "bundles"

    def bundle_dir(self, version: str | int) -> Path:
        return self.bundles / f"v{version}"

    @property
    def champion_pointer(self) -> Path:
        return self.root / "champion.json"

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"
