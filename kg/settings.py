"""Every setting Evergraph reads from the environment, in one place (pydantic-settings).

==============================  ============================================================================
``EVERGRAPH_HOME``              the Evergraph home (default ``./.evergraph``); ``--home`` wins
``EVERGRAPH_LLM_BASE_URL``      OpenAI-compatible endpoint for ``ask``, e.g. ``http://127.0.0.1:8080/v1``
``EVERGRAPH_LLM_MODEL``         the chat model to ask
``EVERGRAPH_LLM_API_KEY_ENV``   env var holding the API key (default ``OPENAI_API_KEY``; empty = no auth)
``EVERGRAPH_LLM_TIMEOUT``       seconds per LLM request (default 30)
``MLFLOW_TRACKING_URI``         MLflow tracking/registry URI (default: SQLite in the home); ``--tracking-uri``
                                and ``RegistryConfig.tracking_uri`` win
==============================  ============================================================================

Read with :func:`load_settings` at the moment a value is needed (never cached at import), so a changed
environment is seen. A bad value is an :class:`~evergraph.kg.errors.SettingsError` naming the variable.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from evergraph.kg.errors import SettingsError

__all__ = ["Settings", "load_settings"]


class Settings(BaseSettings):
    """The environment's settings; ``None`` means not set (the documented default applies where it is used)."""

    model_config = SettingsConfigDict(env_prefix="EVERGRAPH_", env_ignore_empty=True, extra="ignore", frozen=True)

    home: Path | None = Field(None, description="EVERGRAPH_HOME: the Evergraph home; default ./.evergraph")
    llm_base_url: str | None = Field(None, description="EVERGRAPH_LLM_BASE_URL: OpenAI-compatible endpoint")
    llm_model: str | None = Field(None, description="EVERGRAPH_LLM_MODEL: the chat model")
    llm_api_key_env: str | None = Field(
        None, description="EVERGRAPH_LLM_API_KEY_ENV: env var of the API key ('' = no auth; unset = OPENAI_API_KEY)"
    )
    llm_timeout: float | None = Field(None, description="EVERGRAPH_LLM_TIMEOUT: seconds per request; default 30")
    mlflow_tracking_uri: str | None = Field(
        None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI"),
        description="MLFLOW_TRACKING_URI: MLflow tracking URI; default sqlite:///HOME/mlflow.db",
    )


_ENV_NAMES = {"mlflow_tracking_uri": "MLFLOW_TRACKING_URI"}


def load_settings() -> Settings:
    """The settings of the current environment (empty values count as unset, except
    ``EVERGRAPH_LLM_API_KEY_ENV``, where empty means no auth)."""
    try:
        settings = Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"{_ENV_NAMES.get(str(e['loc'][0]), 'EVERGRAPH_' + str(e['loc'][0]).upper())}: {e['msg']}"
            for e in error.errors()
        )
        raise SettingsError(f"bad environment setting ({problems}): fix or unset it") from None
    key_env = os.environ.get("EVERGRAPH_LLM_API_KEY_ENV")
    if key_env is not None and not key_env.strip():
        return settings.model_copy(update={"llm_api_key_env": ""})  # set but empty: no auth
    return settings
