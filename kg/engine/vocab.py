"""Append-only label <-> id maps: an id, once given, never changes.

Unlike PyKEEN's ``TriplesFactory`` (which sorts labels and renumbers whenever the label set changes), a
:class:`Vocabulary` only ever appends: the label first added gets id 0, the next one id 1, and so on, so ids
stay valid for every model and index built on them while the graph grows.

File format (``save``/``load``): UTF-8, one label per line as ``id<TAB>label``, ids ``0..n-1`` in order,
lines ending in ``\\n``.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from evergraph.kg.engine.atomic import write_text
from evergraph.kg.errors import Problem, UnknownLabelError, VocabularyFileError

logger = logging.getLogger(__name__)

__all__ = ["UnknownLabelError", "Vocabulary", "VocabularyFileError"]


def _check_label(label: str) -> None:
    """Reject labels the file format cannot hold: non-strings, empty strings, tabs and newlines."""
    if not isinstance(label, str):
        raise TypeError(f"a label must be a str, got {type(label).__name__}: {label!r}")
    if not label:
        raise ValueError("a label must not be empty")
    if "\t" in label or "\n" in label:
        raise ValueError(f"a label must not contain a tab or a newline: {label!r}")


class Vocabulary:
    """An append-only map between labels and the ids ``0..len-1``.

    ``labels`` are added in order (a repeated label keeps its first id). ``kind`` (default ``"label"``)
    names what the labels are, e.g. ``"entity"`` or ``"relation"``; it only appears in error messages.
    Labels must be non-empty and hold no tab or newline (``ValueError``).
    """

    def __init__(self, labels: Iterable[str] = (), *, kind: str = "label") -> None:
        self.kind = kind
        self._labels: list[str] = []
        self._ids: dict[str, int] = {}
        for label in labels:
            self.add(label)

    def __len__(self) -> int:
        return len(self._labels)

    def __contains__(self, label: object) -> bool:
        return label in self._ids

    def __iter__(self) -> Iterator[str]:
        """The labels in id order."""
        return iter(self._labels)

    def __repr__(self) -> str:
        return f"Vocabulary(kind={self.kind!r}, size={len(self)})"

    @property
    def labels(self) -> list[str]:
        """A copy of all labels in id order."""
        return list(self._labels)

    def id(self, label: str) -> int:
        """The id of ``label``; :class:`UnknownLabelError` (a ``KeyError``) if it was never added."""
        try:
            return self._ids[label]
        except KeyError:
            raise UnknownLabelError(
                f"unknown {self.kind} {label!r}: not in the vocabulary ({len(self)} labels)"
            ) from None

    def get(self, label: str, default: int | None = None) -> int | None:
        """The id of ``label``, or ``default`` (``None``) if it was never added."""
        return self._ids.get(label, default)

    def to_dict(self) -> dict[str, int]:
        """A copy of the ``label -> id`` map (in id order)."""
        return dict(self._ids)

    def ids(self, labels: Iterable[str]) -> list[int]:
        """The ids of ``labels``, in order; :class:`UnknownLabelError` at the first unknown one."""
        return [self.id(label) for label in labels]

    def label(self, i: int) -> str:
        """The label with id ``i``; ``IndexError`` unless ``0 <= i < len(self)`` (no negative indexing)."""
        if not 0 <= i < len(self._labels):
            raise IndexError(f"no {self.kind} with id {i}: ids run from 0 to {len(self._labels) - 1}")
        return self._labels[i]

    def add(self, label: str) -> int:
        """The id of ``label``, appending it (with the next id, ``len(self)``) if it is new."""
        found = self._ids.get(label)
        if found is not None:
            return found
        _check_label(label)
        new_id = len(self._labels)
        self._labels.append(label)
        self._ids[label] = new_id
        return new_id

    def copy(self) -> Vocabulary:
        """An independent vocabulary with the same labels, ids and kind."""
        clone = Vocabulary(kind=self.kind)
        clone._labels = list(self._labels)
        clone._ids = dict(self._ids)
        return clone

    def prefix(self, size: int) -> Vocabulary:
        """An independent vocabulary of the first ``size`` labels (what this one was when it held ``size``)."""
        if not 0 <= size <= len(self._labels):
            raise IndexError(f"no prefix of {size} {self.kind} labels: the vocabulary holds {len(self._labels)}")
        clone = Vocabulary(kind=self.kind)
        clone._labels = self._labels[:size]
        clone._ids = dict(itertools.islice(self._ids.items(), size))  # insertion order is id order
        return clone

    def is_prefix_of(self, other: Vocabulary) -> bool:
        """Whether every id of ``self`` means the same label in ``other`` (``other`` may hold more)."""
        n = len(self._labels)
        return n <= len(other._labels) and other._labels[:n] == self._labels

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the vocabulary to ``path`` atomically.

        The labels go to a temporary file in the same directory, which is flushed, fsynced and then moved
        over ``path`` with ``os.replace``: a reader sees the old file or the new one, never a partial one,
        and a failed save leaves no temporary file behind (:mod:`evergraph.kg.engine.atomic`).
        """
        path = Path(path)
        write_text(path, "".join(f"{i}\t{label}\n" for i, label in enumerate(self._labels)))
        logger.debug("saved %d %s labels to %s", len(self), self.kind, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, kind: str = "label") -> Vocabulary:
        """Read a vocabulary written by :meth:`save`.

        Every line must be ``id<TAB>label`` with ids ``0, 1, 2, ...`` in order and no label twice; all
        problems are collected and raised together as :class:`VocabularyFileError` naming ``file:line``.
        A missing file raises ``FileNotFoundError``. A trailing newline at the end of the file is fine.
        """
        path = Path(path)
        where = str(path)
        data = path.read_bytes()
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        problems: list[Problem] = []
        labels: list[str] = []
        first_line: dict[str, int] = {}
        for number, raw in enumerate(lines, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.append(Problem(where, number, f"invalid UTF-8 at byte {exc.start} of the line"))
                continue
            fields = text.split("\t")
            if len(fields) != 2:
                problems.append(Problem(where, number, f"expected 2 tab-separated fields, found {len(fields)}"))
                continue
            id_text, label = fields
            expected = number - 1  # line n holds id n-1
            if id_text != str(expected):
                problems.append(Problem(where, number, f"expected id {expected}, found {id_text!r}"))
            if not label:
                problems.append(Problem(where, number, "empty label"))
            elif label in first_line:
                first = first_line[label]
                problems.append(Problem(where, number, f"label {label!r} already has id {first - 1} (line {first})"))
            else:
                first_line[label] = number
            labels.append(label)
        if problems:
            raise VocabularyFileError(problems)
        vocab = cls(kind=kind)
        vocab._labels = labels
        vocab._ids = {label: i for i, label in enumerate(labels)}
        logger.debug("loaded %d %s labels from %s", len(vocab), kind, path)
        return vocab
