"""Log a model version as an MLflow pyfunc model around its serving bundle (models from code).

The run of a snapshot holds, beside ``model/`` (:mod:`evergraph.registry.tracking`), the pyfunc model
``knowledge/``::

    knowledge/MLmodel                  python_function flavour, signature (question -> guide row)
    knowledge/knowledge_model.py       the model code (:mod:`evergraph.registry.knowledge_model`)
    knowledge/artifacts/bundle/...     the version's serving bundle, its manifest with the sha256 of each file
    knowledge/requirements.txt, python_env.yaml, conda.yaml

The registered version's source is ``runs:/<run>/knowledge``, so ``mlflow.pyfunc.load_model(
"models:/<name>@champion")`` answers questions and ``mlflow models serve -m models:/<name>@champion
--env-manager local`` serves them over HTTP (``POST /invocations`` with ``{"dataframe_records":
[{"question": "..."}]}``).
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

from mlflow import MlflowClient
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import ColSpec, Schema

from evergraph.kg.errors import RegistryError
from evergraph.registry import knowledge_model
from evergraph.registry.knowledge_model import BUNDLE_ARTIFACT

logger = logging.getLogger(__name__)

__all__ = ["KNOWLEDGE_DIR", "SIGNATURE", "has_knowledge_model", "log_knowledge_model", "save_knowledge_model"]

KNOWLEDGE_DIR = "knowledge"
"""The artifact path of the pyfunc model in a snapshot's run (the registered version's source)."""

SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "question")]),
    outputs=Schema(
        [
            ColSpec("string", "question"),
            ColSpec("boolean", "abstained"),
            ColSpec("string", "reason"),
            ColSpec("string", "context"),
            ColSpec("string", "facts"),
            ColSpec("string", "version"),
            ColSpec("long", "snapshot"),
        ]
    ),
)
"""Questions in, one guide row out per question (``facts``: the cited facts as a JSON list)."""


def _requirements() -> list[str]:
    """The pip requirement of this Evergraph (its installed version when known)."""
    try:
        return [f"evergraph=={metadata.version('evergraph')}"]
    except metadata.PackageNotFoundError:
        return ["evergraph"]


def save_knowledge_model(*, bundle: Path | str, path: Path | str) -> Path:
    """Save the pyfunc model of ``bundle`` (a serving bundle directory) at ``path`` (must not exist)."""
    import mlflow.pyfunc

    bundle, path = Path(bundle), Path(path)
    if not (bundle / "manifest.json").is_file():
        raise RegistryError(f"{bundle} is not a serving bundle (no manifest.json); write the bundle first")
    with warnings.catch_warnings():
        # Both hints are about what SIGNATURE already settles: type hints on ``predict`` would infer a second
        # signature, and an input example would load the bundle and answer a question at every registration.
        warnings.filterwarnings("ignore", message=r".*Add type hints to the `predict` method", category=UserWarning)
        warnings.filterwarnings("ignore", message=r".*An input example was not provided", category=UserWarning)
        mlflow.pyfunc.save_model(
            path=str(path),
            python_model=str(Path(knowledge_model.__file__)),
            artifacts={BUNDLE_ARTIFACT: str(bundle)},
            signature=SIGNATURE,
            pip_requirements=_requirements(),
        )
    return path


def has_knowledge_model(client: MlflowClient, run_id: str) -> bool:
    """Whether ``run_id`` already holds a complete ``knowledge/`` model (its ``MLmodel`` is logged last)."""
    return any(item.path == f"{KNOWLEDGE_DIR}/MLmodel" for item in client.list_artifacts(run_id, KNOWLEDGE_DIR))


def log_knowledge_model(*, client: MlflowClient, run_id: str, bundle: Path | str) -> None:
    """Log the pyfunc model of ``bundle`` as ``knowledge/`` of ``run_id`` (nothing when it is already there).
    ``MLmodel`` is uploaded last, so a log cut short is found incomplete and redone."""
    if has_knowledge_model(client, run_id):
        return
    with tempfile.TemporaryDirectory(prefix="evergraph-pyfunc-") as tmp:
        model = save_knowledge_model(bundle=bundle, path=Path(tmp) / KNOWLEDGE_DIR)
        mlmodel = model / "MLmodel"
        held = Path(tmp) / "MLmodel"
        mlmodel.replace(held)
        client.log_artifacts(run_id, str(model), KNOWLEDGE_DIR)
        client.log_artifact(run_id, str(held), KNOWLEDGE_DIR)
    logger.info("logged the pyfunc knowledge model of %s to run %s", bundle, run_id)
