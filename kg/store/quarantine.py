"""Quarantine (issue 10, ``--quarantine hold``): new facts the champion finds implausible are kept out of training
and out of the known facts until a person releases or rejects them (``evergraph quarantine``).

The source a person gives is never modified. A lineage that holds facts learns a *curated* copy of it instead, one
snapshot at a time, each written once before it is learned (history stays append-only)::

    HOME/quarantine/facts.json                   every held fact of every lineage (:class:`HeldFact`): number, lineage,
                                                 snapshot, split, head, relation, tail, probability, reason, the
                                                 champion version that checked it, status and when it was decided
    HOME/quarantine/<lineage>/source/<n>/        snapshot n as the lineage learns it: the source's snapshot without
                                                 its held facts (train/valid/test.txt, removed.txt), the facts released
                                                 since the previous snapshot added to train.txt, and rejected.txt
                                                 (the facts rejected since: the bundle retracts them)
    HOME/quarantine/<lineage>/source/*.tsv       the source's name files
    HOME/quarantine/<lineage>/curation.json      per snapshot: the source's content hash, the curated one, counts

A snapshot the champion finds nothing to hold in is copied byte for byte, so its content hash is the source's: a
lineage can switch from ``flag`` to ``hold`` between runs. Statuses: ``held`` (waiting), ``released`` (learned with
the next snapshot: ``learned_in``), ``rejected`` (never learned; retracted by the next snapshot's bundle:
``retracted_in``) and ``withdrawn`` (the source itself removed the fact while it was held). Every file is replaced
atomically; changes to ``facts.json`` hold a file lock, so the command line and a running pipeline take turns.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from evergraph.kg.engine.atomic import write_json, write_text
from evergraph.kg.engine.ingest import (
    ENTITY_NAMES_FILE,
    RELATION_NAMES_FILE,
    REMOVED_FILE,
    SPLITS,
    RawSnapshot,
    read_snapshot_dir,
)
from evergraph.kg.engine.vocab import Vocabulary
from evergraph.kg.errors import HistoryChangedError, QuarantineError

logger = logging.getLogger(__name__)

__all__ = [
    "REJECTED_FILE",
    "CuratedSource",
    "HeldFact",
    "QuarantineStore",
    "Selection",
    "rejected_facts",
]

FORMAT = 1
REJECTED_FILE = "rejected.txt"
"""In a curated snapshot: the facts rejected before it was written (``head<TAB>relation<TAB>tail``)."""

Status = Literal["held", "released", "rejected", "withdrawn"]
Triple = tuple[str, str, str]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class HeldFact(BaseModel):
    """One fact the quarantine holds (or held): ``id`` is its number, stable for the life of the home."""

    model_config = ConfigDict(extra="forbid")

    id: int
    lineage: str
    snapshot: int
    split: str
    head: str
    relation: str
    tail: str
    probability: float | None
    reason: str | None
    champion: str
    held: str
    status: Status = "held"
    decided: str | None = None
    learned_in: int | None = None
    retracted_in: int | None = None

    @property
    def triple(self) -> Triple:
        return (self.head, self.relation, self.tail)


class Selection(BaseModel):
    """Which held facts a decision is about: numbers, one fact by labels, or every held one."""

    model_config = ConfigDict(extra="forbid")

    ids: list[int] = []
    fact: tuple[str, str, str] | None = None
    all: bool = False


class QuarantineStore:
    """``HOME/quarantine/facts.json``: the held facts of every lineage of a home."""

    def __init__(self, home_root: Path | str) -> None:
        self.root = Path(home_root) / "quarantine"
        self.path = self.root / "facts.json"

    # -- reading and writing ----------------------------------------------------------------------------

    def facts(self) -> list[HeldFact]:
        """Every fact ever held here, in the order held (empty when nothing was)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (ValueError, UnicodeDecodeError) as error:
            raise QuarantineError(
                f"{self.path} is not valid JSON ({error}); restore it from a backup (the held facts are listed "
                "in each snapshot's plausibility report, HOME/trust/reports/)"
            ) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("facts"), list):
            raise QuarantineError(f"{self.path} is not a quarantine file of format {FORMAT}; restore it")
        facts = []
        for number, item in enumerate(data["facts"]):
            try:
                facts.append(HeldFact.model_validate(item))
            except ValidationError as error:
                first = error.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                problem = f"{self.path}: facts[{number}].{where}: {first['msg']}"
                raise QuarantineError(f"{problem}; restore the file") from None
        return facts

    def _save(self, facts: Sequence[HeldFact]) -> None:
        write_json(self.path, {"format": FORMAT, "facts": [f.model_dump() for f in facts]})

    @contextmanager
    def locked(self) -> Iterator[list[HeldFact]]:
        """The facts, to change in place; saved when the block ends without an error (one writer at a time)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                facts = self.facts()
                yield facts
                self._save(facts)
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    # -- decisions ----------------------------------------------------------------------------------------

    def select(self, selection: Selection, *, facts: Sequence[HeldFact] | None = None) -> list[HeldFact]:
        """The held facts ``selection`` names; a :class:`QuarantineError` that says what to do for an empty
        selection, an unknown number or fact, or one already decided."""
        facts = self.facts() if facts is None else facts
        given = sum((bool(selection.ids), selection.fact is not None, selection.all))
        if given != 1:
            raise QuarantineError(
                "name the facts to decide: their numbers (`evergraph quarantine list` shows them), --fact HEAD "
                "RELATION TAIL, or --all" + (" (only one of these)" if given else "")
            )
        held = [f for f in facts if f.status == "held"]
        if not held:
            where = "nothing was ever held" if not facts else f"all {len(facts)} held fact(s) are decided"
            raise QuarantineError(f"the quarantine of {self.root.parent} is empty ({where}); nothing to decide")
        if selection.all:
            return held
        by_id = {f.id: f for f in facts}
        if selection.fact is not None:
            found = [f for f in held if f.triple == tuple(selection.fact)]
            if not found:
                decided = [f for f in facts if f.triple == tuple(selection.fact)]
                if decided:
                    raise QuarantineError(_decided(decided[-1]))
                raise QuarantineError(
                    f"{' / '.join(selection.fact)} is not held (labels as in the source, e.g. "
                    f"{held[0].head} / {held[0].relation} / {held[0].tail}); `evergraph quarantine list` shows the "
                    "held facts"
                )
            return found
        chosen = []
        for number in dict.fromkeys(selection.ids):
            fact = by_id.get(number)
            if fact is None:
                raise QuarantineError(
                    f"no held fact #{number} (numbers {facts[0].id}..{facts[-1].id} exist); `evergraph quarantine "
                    "list` shows the held facts"
                )
            if fact.status != "held":
                raise QuarantineError(_decided(fact))
            chosen.append(fact)
        return chosen

    def decide(self, selection: Selection, status: Literal["released", "rejected"]) -> list[HeldFact]:
        """Release or reject the facts of ``selection`` (all or none: a bad number changes nothing)."""
        with self.locked() as facts:
            chosen = {f.id for f in self.select(selection, facts=facts)}
            when = _now()
            for i, fact in enumerate(facts):
                if fact.id in chosen:
                    facts[i] = fact.model_copy(update={"status": status, "decided": when})
            decided = [f for f in facts if f.id in chosen]
        logger.info("%s %d fact(s) of %s", status, len(decided), self.path)
        return decided


def _decided(fact: HeldFact) -> str:
    after = {
        "released": "it is learned with the next snapshot"
        if fact.learned_in is None
        else f"learned with snapshot {fact.learned_in}",
        "rejected": "it is never learned",
        "withdrawn": "the source itself removed it",
        "held": "",
    }[fact.status]
    return f"fact #{fact.id} ({fact.head} / {fact.relation} / {fact.tail}) was already {fact.status} ({after})"


# ------------------------------------------------------------------------------------------ curated source


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _triple(line: str) -> Triple:
    head, relation, tail = line.split("\t")
    return (head, relation, tail)


def _lines_of(item: Path | RawSnapshot) -> dict[str, list[str]]:
    """The lines of each split (and ``removed``) of one source snapshot, as the source gives them."""
    if isinstance(item, RawSnapshot):
        return {
            name: ["\t".join(t) for t in (item.removed if name == "removed" else item.split(name))]
            for name in (*SPLITS, "removed")
        }
    return {name: _read_lines(item / f"{name}.txt") for name in (*SPLITS, "removed")}


class CuratedSource:
    """The curated copy of a lineage's source (module docstring)."""

    def __init__(self, home_root: Path | str, lineage: str) -> None:
        self.home_root = Path(home_root)
        self.lineage = lineage
        self.root = self.home_root / "quarantine" / lineage
        self.source = self.root / "source"
        self.record_path = self.root / "curation.json"

    def exists(self) -> bool:
        return self.record_path.is_file()

    def record(self) -> dict[str, dict[str, Any]]:
        """Snapshot number (as text) -> ``raw_hash``, ``hash``, counts; empty before the first snapshot."""
        try:
            data = json.loads(self.record_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as error:
            raise QuarantineError(f"{self.record_path} is not valid JSON ({error}); restore it") from None
        return dict(data.get("snapshots", {}))

    def planned(self, snapshots: list[dict[str, Any]], *, source: str) -> list[dict[str, Any]]:
        """``snapshots`` (the ingest task's list of the raw source) with the content hash of each snapshot already
        curated replaced by the curated one (what the registry recorded); a source snapshot that changed since it
        was curated is a :class:`HistoryChangedError`."""
        record = self.record()
        out = []
        for snap in snapshots:
            done = record.get(str(snap["snapshot"]))
            if done is not None:
                if done["raw_hash"] != snap["content_hash"]:
                    raise HistoryChangedError(
                        f"snapshot {snap['snapshot']} of {source} changed since it was checked and curated into "
                        f"{self.source / str(snap['snapshot'])}; history is append-only: restore the original "
                        "files, or add the change as a new snapshot"
                    )
                snap = {**snap, "content_hash": done["hash"]}
            out.append(snap)
        return out

    def curate(
        self,
        *,
        items: Sequence[Path | RawSnapshot],
        snapshot: int,
        hold: Iterable[dict[str, Any]],
        champion: str | None,
        store: QuarantineStore,
        names: tuple[dict[str, str], dict[str, str]] = ({}, {}),
    ) -> dict[str, Any]:
        """Write curated snapshot ``snapshot`` from the source's ``items`` (snapshots ``0..snapshot`` as the source
        gives them; earlier ones not curated yet are copied as they are) and return what it did: ``held``,
        ``released``, ``rejected``, ``withdrawn``, ``source`` (the curated folder). ``hold`` are the suspects of
        the check (report rows: ``head``, ``relation``, ``tail``, ``probability``, ``reason``). Writing the same
        snapshot again (a resumed run) returns what was recorded."""
        record = self.record()
        needed = [i for i in range(snapshot + 1) if i == snapshot or str(i) not in record]  # others: not read again
        raw_hashes = {i: self._raw_hash(items[i]) for i in needed}
        done = record.get(str(snapshot))
        if done is not None:
            if done["raw_hash"] != raw_hashes[snapshot]:
                raise HistoryChangedError(
                    f"snapshot {snapshot} changed since it was curated into {self.source / str(snapshot)}; history is "
                    "append-only: restore the original files"
                )
            return {**done["counts"], "snapshot": snapshot, "source": str(self.source), "resumed": True}
        self.source.mkdir(parents=True, exist_ok=True)
        for earlier in range(snapshot):
            if str(earlier) not in record:  # learned before hold was on: copied as it is
                if isinstance(items[earlier], RawSnapshot):
                    raise QuarantineError(
                        f"--quarantine hold on a folder of exports must be on from the lineage's first snapshot "
                        f"(snapshot {earlier} was learned without it); start a new home, or keep --quarantine flag"
                    )
                self._write(earlier, _lines_of(items[earlier]), copy_from=items[earlier])  # type: ignore[arg-type]
                record[str(earlier)] = {
                    "raw_hash": raw_hashes[earlier],
                    "hash": raw_hashes[earlier],
                    "counts": {"held": 0, "released": 0, "rejected": 0, "withdrawn": 0},
                }
        with store.locked() as facts:
            counts, lines = self._curated_lines(_lines_of(items[snapshot]), snapshot, hold, champion, facts)
            if not lines["train"] and not lines["removed"]:
                raise QuarantineError(
                    f"every training fact of snapshot {snapshot} is a suspect, so holding them would leave nothing to "
                    "learn; check the source, or run it with --quarantine flag (learns everything, reports suspects)"
                )
            unchanged = not any(counts.values()) and not isinstance(items[snapshot], RawSnapshot)
            written = self._write(snapshot, lines, copy_from=items[snapshot] if unchanged else None)  # type: ignore[arg-type]
        self._write_names(names)
        record[str(snapshot)] = {"raw_hash": raw_hashes[snapshot], "hash": written, "counts": counts}
        write_json(self.record_path, {"format": FORMAT, "lineage": self.lineage, "snapshots": record})
        logger.info("curated snapshot %d of %s: %s", snapshot, self.lineage, counts)
        return {**counts, "snapshot": snapshot, "source": str(self.source), "resumed": False}

    @staticmethod
    def _raw_hash(item: Path | RawSnapshot) -> str:
        return item.content_hash if isinstance(item, RawSnapshot) else read_snapshot_dir(item).content_hash

    def _curated_lines(
        self,
        raw: dict[str, list[str]],
        snapshot: int,
        hold: Iterable[dict[str, Any]],
        champion: str | None,
        facts: list[HeldFact],
    ) -> tuple[dict[str, int], dict[str, list[str]]]:
        """The lines of curated ``snapshot`` and the counts; ``facts`` (the store, locked) is updated in place."""
        mine = [f for f in facts if f.lineage == self.lineage]
        # a resumed curation of this snapshot sees its own earlier decisions as pending again
        waiting = {f.triple for f in mine if f.status == "held" and f.snapshot != snapshot}
        rejected = {f.triple for f in mine if f.status == "rejected"}
        release = [f for f in mine if f.status == "released" and f.learned_in in (None, snapshot)]
        retract = [f for f in mine if f.status == "rejected" and f.retracted_in in (None, snapshot)]
        approved = {f.triple for f in mine if f.status == "released"}  # a person released it: not held again
        suspects = {(row["head"], row["relation"], row["tail"]): row for row in hold}
        suspects = {triple: row for triple, row in suspects.items() if triple not in approved}
        out: dict[str, list[str]] = {}
        split_of: dict[Triple, str] = {}
        for name in SPLITS:
            kept = []
            for line in raw[name]:
                triple = _triple(line)
                if triple in suspects or triple in waiting or triple in rejected:
                    split_of.setdefault(triple, name)
                    continue
                kept.append(line)
            out[name] = kept
        present = {_triple(line) for name in SPLITS for line in out[name]}
        removed_raw = [_triple(line) for line in raw["removed"]]
        gone = set(removed_raw)
        # a removal of a fact this lineage never learned (held or rejected) has nothing to retract
        out["removed"] = [line for line in raw["removed"] if _triple(line) not in waiting | rejected]
        added = [f for f in release if f.triple not in present and f.triple not in gone]
        out["train"] += ["\t".join(f.triple) for f in added]
        out["rejected"] = ["\t".join(f.triple) for f in retract]
        when = _now()
        next_id = max((f.id for f in facts), default=0) + 1
        known_held = {(f.triple, f.snapshot) for f in mine if f.status == "held"}
        held = 0
        for triple, row in suspects.items():
            if triple not in split_of:  # the check saw it, but the source's files here do not hold it
                continue
            held += 1
            if (triple, snapshot) in known_held:
                continue
            facts.append(
                HeldFact(
                    id=next_id,
                    lineage=self.lineage,
                    snapshot=snapshot,
                    split=split_of[triple],
                    head=triple[0],
                    relation=triple[1],
                    tail=triple[2],
                    probability=row.get("probability"),
                    reason=row.get("reason"),
                    champion=str(champion),
                    held=when,
                )
            )
            next_id += 1
        withdrawn = 0
        for i, fact in enumerate(facts):
            if fact.lineage != self.lineage:
                continue
            if fact.status == "released" and fact.learned_in in (None, snapshot):
                facts[i] = fact.model_copy(update={"learned_in": snapshot})
            elif fact.status == "rejected" and fact.retracted_in in (None, snapshot):
                facts[i] = fact.model_copy(update={"retracted_in": snapshot})
            elif fact.status == "held" and fact.snapshot != snapshot and fact.triple in gone:
                facts[i] = fact.model_copy(update={"status": "withdrawn", "decided": when})
                withdrawn += 1
        counts = {"held": held, "released": len(release), "rejected": len(retract), "withdrawn": withdrawn}
        return counts, out

    def _write(self, snapshot: int, lines: dict[str, list[str]], *, copy_from: Path | None) -> str:
        """Write curated ``snapshot`` (a byte copy of ``copy_from`` when given) atomically; its content hash."""
        dest = self.source / str(snapshot)
        tmp = Path(tempfile.mkdtemp(prefix=f".{snapshot}.", suffix=".tmp", dir=self.source))
        try:
            for name in (*SPLITS, "removed", "rejected"):
                target = tmp / (REMOVED_FILE if name == "removed" else f"{name}.txt")
                if copy_from is not None and name != "rejected":
                    if (copy_from / target.name).is_file():
                        shutil.copyfile(copy_from / target.name, target)
                elif name in SPLITS or lines.get(name):
                    target.write_text("".join(f"{line}\n" for line in lines.get(name, [])), encoding="utf-8")
            if dest.exists():  # left by a run stopped before it was recorded
                shutil.rmtree(dest)
            os.rename(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return read_snapshot_dir(dest).content_hash

    def _write_names(self, names: tuple[dict[str, str], dict[str, str]]) -> None:
        for file, table in zip((ENTITY_NAMES_FILE, RELATION_NAMES_FILE), names, strict=True):
            if table:
                write_text(self.source / file, "".join(f"{k}\t{v}\n" for k, v in table.items()))

    def point_run(self, run_dir: Path | str) -> None:
        """Make an engine run directory that learned the source so far read the curated copy from now on (the
        snapshots it learned are byte copies there)."""
        config = Path(run_dir) / "config.json"
        if not config.is_file():
            return
        stored = json.loads(config.read_text(encoding="utf-8"))
        if stored.get("data") != str(self.source):
            write_json(config, {**stored, "data": str(self.source)})


def rejected_facts(data: Path | str, *, upto: int, entities: Vocabulary, relations: Vocabulary) -> torch.Tensor:
    """The facts rejected in the quarantine (``rejected.txt`` of curated snapshots ``0..upto`` of ``data``) that
    ``entities``/``relations`` can name, as ids ``LongTensor[n, 3]`` (empty for a source that is not curated)."""
    rows = []
    for snapshot in range(upto + 1):
        for line in _read_lines(Path(data) / str(snapshot) / REJECTED_FILE):
            head, relation, tail = _triple(line)
            ids = (entities.get(head), relations.get(relation), entities.get(tail))
            if None not in ids:
                rows.append(ids)
    return torch.tensor(rows, dtype=torch.long).reshape(-1, 3)
