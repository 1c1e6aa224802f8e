"""Environment settings: read in one place, bad values named, MLFLOW_TRACKING_URI honoured."""

from __future__ import annotations

from pathlib import Path

import pytest

from evergraph.kg.errors import SettingsError
from evergraph.kg.settings import load_settings
from evergraph.kg.store.home import EvergraphHome
from evergraph.registry.config import RegistryConfig

ENV = (
    "EVERGRAPH_HOME",
    "EVERGRAPH_LLM_BASE_URL",
    "EVERGRAPH_LLM_MODEL",
    "EVERGRAPH_LLM_API_KEY_ENV",
    "EVERGRAPH_LLM_TIMEOUT",
    "MLFLOW_TRACKING_URI",
)


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV:
        monkeypatch.delenv(var, raising=False)


def test_unset_means_none() -> None:
    settings = load_settings()
    assert settings.home is None and settings.llm_base_url is None and settings.mlflow_tracking_uri is None


def test_values_are_read_and_typed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EVERGRAPH_HOME", str(tmp_path))
    monkeypatch.setenv("EVERGRAPH_LLM_TIMEOUT", "2.5")
    monkeypatch.setenv("EVERGRAPH_LLM_BASE_URL", "")  # empty = not set
    settings = load_settings()
    assert (settings.home, settings.llm_timeout, settings.llm_base_url) == (tmp_path, 2.5, None)
    assert EvergraphHome.resolve().root == tmp_path.resolve()


def test_an_empty_key_variable_means_no_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVERGRAPH_LLM_API_KEY_ENV", "")
    assert load_settings().llm_api_key_env == ""


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVERGRAPH_LLM_TIMEOUT", "soon")
    with pytest.raises(SettingsError, match="EVERGRAPH_LLM_TIMEOUT"):
        load_settings()


def test_mlflow_tracking_uri_is_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = EvergraphHome(tmp_path / "home")
    assert RegistryConfig().location(home).tracking_uri == home.tracking_uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/elsewhere.db")
    location = RegistryConfig().location(home)
    assert location.tracking_uri == f"sqlite:///{tmp_path}/elsewhere.db"
    assert location.artifact_location == (tmp_path / "mlartifacts").as_uri()
    # an explicit tracking URI (--tracking-uri) still wins
    assert RegistryConfig(tracking_uri="http://127.0.0.1:5000").location(home).tracking_uri == "http://127.0.0.1:5000"
