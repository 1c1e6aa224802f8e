"""Stable train/valid/test splits of user facts: the split of a fact is a function of the fact alone.

Each fact ``(head, relation, tail)`` is hashed (BLAKE2b of its labels); the hash, read as a number in ``[0, 1)``,
falls into train, valid or test by the configured shares (default 90/5/5). A fact therefore keeps its split in every
later version of the graph, and the same fact added again after a retraction lands in the same split: evaluation
never sees a fact it trained on.
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["SplitConfig", "split_of"]


class SplitConfig(BaseModel):
    """Shares of new facts that go to validation and test (the rest trains)."""

    model_config = ConfigDict(extra="forbid")

    valid: float = Field(0.05, ge=0, lt=1, description="share of new facts held out for validation")
    test: float = Field(0.05, ge=0, lt=1, description="share of new facts held out for testing")
    salt: str = Field("", description="changes every split at once (a new graph history); keep it fixed")

    @model_validator(mode="after")
    def _leave_training(self) -> SplitConfig:
        if self.valid + self.test >= 1:
            raise ValueError("valid + test must leave a share for training (below 1)")
        return self


_SCALE = float(2**64)


def split_of(head: str, relation: str, tail: str, config: SplitConfig) -> str:
    """``"train"``, ``"valid"`` or ``"test"`` for the fact, the same on every call and every machine."""
    digest = hashlib.blake2b(f"{config.salt}\t{head}\t{relation}\t{tail}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / _SCALE
    if u < config.test:
        return "test"
    if u < config.test + config.valid:
        return "valid"
    return "train"
