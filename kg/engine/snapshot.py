"""The in-memory form of one ingested snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class IngestReport:
    """What the ingest policies did to one snapshot (counted, never silent).

    - ``duplicates_dropped``: repeated lines inside one file (split name -> count), dropped.
    - ``known_skipped``: facts already known from an earlier snapshot (split -> count), skipped.
    - ``unseen_excluded``: valid/test triples whose entity or relation never appeared in training up
      to this snapshot (split -> count), excluded from evaluation.
    """

    duplicates_dropped: dict[str, int] = field(default_factory=dict)
    known_skipped: dict[str, int] = field(default_factory=dict)
    unseen_excluded: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {
            "duplicates_dropped": dict(self.duplicates_dropped),
            "known_skipped": dict(self.known_skipped),
            "unseen_excluded": dict(self.unseen_excluded),
        }


@dataclass
class Snapshot:
    """One snapshot after ingestion.

    ``train``/``valid``/``test`` are ``LongTensor[n, 3]`` of ``(head, relation, tail)`` ids, holding only the
    facts new in this snapshot. Relation ids are the *base* ids of the relation vocabulary (inverse relations
    are a model concern). ``num_entities``/``num_relations`` are the vocabulary sizes after this snapshot:
    because ids are append-only, the entities known at snapshot ``i`` are exactly ids ``0..num_entities-1``.
    """

    index: int
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    num_entities: int
    num_relations: int
    content_hash: str
    report: IngestReport = field(default_factory=IngestReport)

    @property
    def facts(self) -> torch.Tensor:
        """All facts (train, valid and test) new in this snapshot."""
        return torch.cat([self.train, self.valid, self.test])
