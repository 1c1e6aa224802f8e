"""prepare_store: a new home's MLflow database made by another process, waited for by the first real open."""

from pathlib import Path

from evergraph.kg.store.home import EvergraphHome
from evergraph.registry import ModelRegistry, RegistryConfig, prepare_store
from evergraph.registry._store import _PREPARING


def test_a_prepared_store_is_waited_for_and_then_used(tmp_path: Path):
    home = EvergraphHome(tmp_path / "home")
    home.root.mkdir(parents=True)
    assert prepare_store(config=RegistryConfig(), home=home)
    assert not prepare_store(config=RegistryConfig(), home=home)  # one preparation per store and process
    models = ModelRegistry(home=home)  # at once: waits for the preparation instead of racing its migrations
    assert _PREPARING[home.tracking_uri].poll() == 0  # done, and it worked
    assert models.champion() is None and models.versions() == []
    assert (home.root / "mlflow.db").is_file()
    assert models.experiment_id  # the store works: the experiment is created on first use


def test_a_server_store_needs_no_preparation(tmp_path: Path):
    assert not prepare_store(config=RegistryConfig(tracking_uri="http://127.0.0.1:9"), home=EvergraphHome(tmp_path))
