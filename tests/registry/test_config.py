import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from evergraph import registry
from evergraph.kg.store.home import EvergraphHome
from evergraph.registry import RegistryConfig


def test_exported_names_are_pinned():
    assert sorted(registry.__all__) == sorted(
        [
            "CHALLENGER",
            "CHAMPION",
            "GateDecision",
            "ManifestError",
            "ModelRegistry",
            "RegistryConfig",
            "RegistryError",
            "StoreLocation",
            "VersionInfo",
            "decide",
            "forgetting_matrix_png",
            "log_snapshot_run",
            "open_snapshot_run",
            "prepare_store",
            "stream_mrr_png",
            "verify_manifest",
        ]
    )
    for name in registry.__all__:  # each lazy name resolves to the object of the module that defines it
        value = getattr(registry, name)
        assert getattr(value, "__name__", name) == name or not callable(value), name


def test_defaults_use_the_home_store_and_its_artifacts(tmp_path: Path):
    home = EvergraphHome(tmp_path)
    location = RegistryConfig().location(home)
    assert location.tracking_uri == home.tracking_uri
    assert location.artifact_location == home.artifacts.as_uri()


def test_an_explicit_sqlite_store_keeps_artifacts_beside_it(tmp_path: Path):
    location = RegistryConfig(tracking_uri=f"sqlite:///{tmp_path}/x/m.db").location(EvergraphHome(tmp_path / "h"))
    assert location.artifact_location == (tmp_path / "x" / "mlartifacts").as_uri()
    assert RegistryConfig(tracking_uri="http://127.0.0.1:5000").location().artifact_location is None


def test_config_rejects_unknown_keys_and_negative_tolerance():
    with pytest.raises(ValidationError):
        RegistryConfig(tolerence=0.1)
    with pytest.raises(ValidationError):
        RegistryConfig(tolerance=-0.1)
    assert RegistryConfig(mlflow_ui_url="http://h:5000/").mlflow_ui_url == "http://h:5000"


def imported(path: Path) -> set[str]:
    """Top-level packages a module imports at run time (``if TYPE_CHECKING:`` blocks excluded)."""
    tree = ast.parse(path.read_text())
    guards = [n for n in ast.walk(tree) if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    skipped = {id(n) for guard in guards for n in ast.walk(guard)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_import_rules():
    """Never prefect (tasks and flows: tests/test_layers.py); the gate, plots and config (and the package face)
    without MLflow."""
    package = Path(registry.__file__).parent
    for module in package.glob("*.py"):
        assert "prefect" not in imported(module), module.name
    for name in ("__init__", "config", "gate", "manifest", "plots"):
        assert "mlflow" not in imported(package / f"{name}.py"), name
