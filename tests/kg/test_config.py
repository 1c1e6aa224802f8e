import pytest
from pydantic import ValidationError

from evergraph.kg.engine.config import LKGEConfig, ModelConfig, RunConfig, TrainConfig


def test_every_field_is_documented():
    for model in (ModelConfig, TrainConfig, LKGEConfig, RunConfig):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_unknown_keys_and_bad_values_are_rejected():
    with pytest.raises(ValidationError):
        TrainConfig(learning_rate=0.1)
    with pytest.raises(ValidationError):
        TrainConfig(lr=-1)


def test_checksum_ignores_the_device_only():
    a = RunConfig()
    assert a.checksum() == RunConfig(train=TrainConfig(device="cpu")).checksum()
    assert a.checksum() != RunConfig(lkge=LKGEConfig(transfer=False)).checksum()
    finetune = RunConfig(strategy="finetune")
    assert finetune.checksum() == RunConfig(strategy="finetune", lkge=LKGEConfig(transfer=False)).checksum()
