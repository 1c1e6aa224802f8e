"""Errors raised by Evergraph. Each message says what went wrong and what to do next."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class EvergraphError(Exception):
    """Base class of every error Evergraph raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One validation problem at ``path:line`` (``line`` is 1-based; 0 means the whole file)."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.reason}"


class SnapshotError(EvergraphError):
    """A snapshot failed validation. Nothing of it was stored.

    ``problems`` lists every problem found (file, line, reason); the message shows the first
    ``shown`` of them and a count of the rest.
    """

    shown = 20

    def __init__(self, problems: Sequence[Problem], *, hint: str = "fix the file(s) and run again") -> None:
        self.problems = list(problems)
        head = "\n".join(f"  {p}" for p in self.problems[: self.shown])
        more = len(self.problems) - self.shown
        tail = f"\n  ... and {more} more problem(s)" if more > 0 else ""
        summary = f"{len(self.problems)} problem(s) in snapshot data; nothing was stored ({hint}):"
        super().__init__(f"{summary}\n{head}{tail}")


class UnknownComponentError(EvergraphError, KeyError):
    """A component (model, strategy, protocol, ...) was asked for by a name nobody registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class CheckpointError(EvergraphError):
    """A checkpoint or run directory does not match what was asked (different config or data)."""


class HistoryChangedError(EvergraphError):
    """A snapshot that was already learned and registered has different content now. History is append-only:
    restore the original snapshot, or add the change as a new snapshot."""
