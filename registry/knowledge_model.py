"""The MLflow pyfunc model of a model version, as *models from code*: MLflow copies this file into the logged
model and runs it on load; :func:`mlflow.models.set_model` below names the model object.

The model wraps the version's serving bundle (logged as the artifact ``bundle``, its manifest verified on load)
and answers questions with the guide: ``predict`` takes a DataFrame with a ``question`` column (or a list of
questions, or one string) and returns one row per question (see :data:`evergraph.registry.pyfunc.SIGNATURE`).
So ``mlflow.pyfunc.load_model("models:/evergraph-embeddings@champion")`` and ``mlflow models serve`` answer
with the champion's knowledge. It loads only the serving side of Evergraph (bundle and knowledge), never
training code.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel, PythonModelContext

from evergraph.kg.knowledge.schemas import GuideResult

BUNDLE_ARTIFACT = "bundle"
"""The artifact key (and folder under ``artifacts/``) of the serving bundle."""
COLUMNS = ("question", "abstained", "reason", "context", "facts", "version", "snapshot")
"""The output columns, in order."""


def _questions(model_input: Any) -> list[str]:
    """The questions of ``model_input``: a DataFrame's ``question`` column (or its only column), a list, a dict
    with ``question``, or one string; anything else is a ``ValueError`` saying what to send."""
    if isinstance(model_input, pd.DataFrame):
        column = "question" if "question" in model_input.columns else None
        if column is None and len(model_input.columns) == 1:
            column = model_input.columns[0]
        if column is None:
            raise ValueError(f"send a column named 'question' (got columns {list(model_input.columns)})")
        values = model_input[column].tolist()
    elif isinstance(model_input, dict) and "question" in model_input:
        value = model_input["question"]
        values = value if isinstance(value, list) else [value]
    elif isinstance(model_input, str):
        values = [model_input]
    elif isinstance(model_input, list):
        values = [item.get("question") if isinstance(item, dict) else item for item in model_input]
    else:
        raise ValueError(f"send questions as a DataFrame with a 'question' column, not {type(model_input).__name__}")
    bad = [value for value in values if not isinstance(value, str)]
    if bad:
        raise ValueError(f"every question must be a string; got {bad[0]!r}")
    return values


def result_row(result: GuideResult) -> dict[str, Any]:
    """One output row of a guide result: the cited ``context``, the ``facts`` as JSON, and the abstention."""
    return {
        "question": result.question,
        "abstained": bool(result.abstained),
        "reason": result.reason or "",
        "context": result.context,
        "facts": json.dumps([fact.model_dump(mode="json") for fact in result.facts]),
        "version": result.version,
        "snapshot": int(result.snapshot),
    }


class KnowledgeModel(PythonModel):
    """Guide answers from one model version's bundle."""

    def load_context(self, context: PythonModelContext) -> None:
        from evergraph.kg.knowledge.knowledge import Knowledge

        self.knowledge = Knowledge.load(context.artifacts[BUNDLE_ARTIFACT])

    def predict(
        self, context: PythonModelContext | None, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """One guide row per question of ``model_input`` (a DataFrame, or as :func:`_questions` reads it). The
        ``pd.DataFrame`` hint is one MLflow infers no signature from, so the explicit
        :data:`evergraph.registry.pyfunc.SIGNATURE` is the only one."""
        rows = [result_row(self.knowledge.guide(question)) for question in _questions(model_input)]
        return pd.DataFrame(rows, columns=list(COLUMNS))


set_model(KnowledgeModel())
