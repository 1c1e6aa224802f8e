"""The in-memory form of one ingested snapshot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch


@dataclass
class IngestReport:
    """What the ingest policies did to one snapshot (counted, never silent).

    - ``duplicates_dropped``: repeated lines inside one file (split name -> count), dropped.
    - ``known_skipped``: facts already known from an earlier snapshot (split -> count), skipped.
    - ``unseen_excluded``: valid/test triples whose entity or relation never appeared in training up
      to this snapshot (split -> count), excluded from evaluation.
    - ``retracted``: known facts of earlier snapshots retracted by this one (they leave the known facts).
    - ``unknown_removed``: removals of facts that were never stored (a dump diff removing a fact that was
      excluded as unseen), ignored.
    - ``source``: what the source reader counted (e.g. ``attributes`` for literal-valued RDF triples, ``names``).
    - ``bom_stripped``: files whose leading UTF-8 byte-order mark was stripped (split or ``removed`` -> 1).
    """

    duplicates_dropped: dict[str, int] = field(default_factory=dict)
    known_skipped: dict[str, int] = field(default_factory=dict)
    unseen_excluded: dict[str, int] = field(default_factory=dict)
    retracted: int = 0
    unknown_removed: int = 0
    source: dict[str, int] = field(default_factory=dict)
    bom_stripped: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "duplicates_dropped": dict(self.duplicates_dropped),
            "known_skipped": dict(self.known_skipped),
            "unseen_excluded": dict(self.unseen_excluded),
        }
        if self.retracted or self.unknown_removed:
            out["retracted"] = self.retracted
            out["unknown_removed"] = self.unknown_removed
        if self.source:
            out["source"] = dict(self.source)
        if self.bom_stripped:
            out["bom_stripped"] = dict(self.bom_stripped)
        return out


@dataclass
class Snapshot:
    """One snapshot after ingestion.

    ``train``/``valid``/``test`` are ``LongTensor[n, 3]`` of ``(head, relation, tail)`` ids, holding only the
    facts new in this snapshot. Relation ids are the *base* ids of the relation vocabulary (inverse relations
    are a model concern). ``num_entities``/``num_relations`` are the vocabulary sizes after this snapshot:
    because ids are append-only, the entities known at snapshot ``i`` are exactly ids ``0..num_entities-1``.
    ``removed`` holds the earlier facts this snapshot retracts (see :func:`retained`).
    """

    index: int
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    num_entities: int
    num_relations: int
    content_hash: str
    report: IngestReport = field(default_factory=IngestReport)
    removed: torch.Tensor = field(default_factory=lambda: torch.empty((0, 3), dtype=torch.long))
    """Facts of earlier snapshots retracted by this one (``LongTensor[n, 3]``); empty for most snapshots."""

    @property
    def facts(self) -> torch.Tensor:
        """All facts (train, valid and test) new in this snapshot."""
        return torch.cat([self.train, self.valid, self.test])


def fact_keys(triples: torch.Tensor) -> torch.Tensor:
    """One ``int64`` per ``(head, relation, tail)`` row, for membership tests (exact for ids below 2**21)."""
    triples = triples.long()
    return (triples[:, 0] << 42) | (triples[:, 1] << 21) | triples[:, 2] if len(triples) else triples.new_empty(0)


def retained(snapshots: Sequence[Snapshot], *, index: int, upto: int, split: str | None = None) -> torch.Tensor:
    """The facts of snapshot ``index`` (one split, or all when ``split`` is ``None``) still known after snapshot
    ``upto``: those not retracted by any snapshot ``index+1..upto``.

    A fact retracted and later added again is a new fact of the later snapshot, so each fact is counted once.
    """
    snap = snapshots[index]
    triples = snap.facts if split is None else getattr(snap, split)
    removed = [s.removed for s in snapshots[index + 1 : upto + 1] if len(s.removed)]
    if not removed or not len(triples):
        return triples
    gone = torch.isin(fact_keys(triples), fact_keys(torch.cat(removed)))
    return triples[~gone]


def retracted_facts(snapshots: Sequence[Snapshot], *, upto: int) -> torch.Tensor:
    """Every fact retracted by snapshots ``0..upto`` and not added again since (``LongTensor[n, 3]``)."""
    parts = []
    for j in range(upto + 1):
        removed = snapshots[j].removed
        if not len(removed):
            continue
        later = [s.facts for s in snapshots[j + 1 : upto + 1]]
        if later:
            again = torch.isin(fact_keys(removed), fact_keys(torch.cat(later)))
            removed = removed[~again]
        parts.append(removed)
    if not parts:
        return torch.empty((0, 3), dtype=torch.long)
    return torch.unique(torch.cat(parts), dim=0)
