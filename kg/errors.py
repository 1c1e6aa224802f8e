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


class UnknownLabelError(EvergraphError, KeyError):
    """A label was looked up that the vocabulary does not hold (an explicit answer, never a silent drop)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class VocabularyFileError(EvergraphError, ValueError):
    """A vocabulary file is malformed. ``problems`` lists every ``file:line`` problem found."""

    shown = 20

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        head = "\n".join(f"  {p}" for p in self.problems[: self.shown])
        more = len(self.problems) - self.shown
        tail = f"\n  ... and {more} more problem(s)" if more > 0 else ""
        summary = (
            f"{len(self.problems)} problem(s) in vocabulary file; nothing was loaded "
            "(fix the file or re-create it from the dataset):"
        )
        super().__init__(f"{summary}\n{head}{tail}")


class ExampleTargetError(EvergraphError, FileExistsError):
    """The output directory holds something that is not an earlier example dataset; nothing was written."""

    def __str__(self) -> str:  # OSError would format its arguments differently
        return str(self.args[0])


class InvalidQueryError(EvergraphError, ValueError):
    """A query's own input is wrong (``k`` out of range, an unknown direction, ...): the caller must change it.

    The HTTP server answers these (and :class:`QuestionTooLongError`) with 4xx; any other exception is a bug
    and a 500."""


class KnowledgeClientError(EvergraphError):
    """A query the client could not get answered; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class EntityIndexError(EvergraphError, ValueError):
    """An entity index cannot be built, searched or loaded as asked; the message says what to do instead."""


class FactTableError(EvergraphError, ValueError):
    """Facts that cannot be held or asked as given; the message says what is wrong."""


class PlausibilityError(EvergraphError, ValueError):
    """The plausibility filter cannot be fitted, read or applied (no validation facts, a damaged file, a bad
    facts file to check); the message names the file or what to do."""


class QuarantineError(EvergraphError, ValueError):
    """A quarantine decision that cannot be made (unknown fact number, a fact already decided)."""


class BundleError(EvergraphError):
    """A bundle or champion pointer cannot be written or loaded as asked; the message says what to do next."""


class LLMError(EvergraphError):
    """A chat-completions request failed.

    ``status`` is the HTTP status of the last answer (``None`` when no answer came: timeout, connection error, or
    a problem found before sending); ``attempts`` is how many requests were sent (0 when none was).
    """

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


class LLMConfigError(LLMError):
    """The client is not configured well enough to send a request (missing env var, bad value). Nothing was sent."""


class TextEncoderError(EvergraphError):
    """A text encoder cannot be made or used as asked; the message says what to do instead."""


class LLMNotConfiguredError(EvergraphError):
    """``ask`` needs an OpenAI-compatible endpoint and none was configured."""


class LinkingError(EvergraphError, ValueError):
    """A linker cannot be built or asked as requested; the message says what to do instead."""


class QuestionTooLongError(LinkingError):
    """A question is longer than the linker's ``max_question_chars``."""


class SettingsError(EvergraphError):
    """An environment variable read by :mod:`evergraph.kg.settings` has a value that cannot be used."""


class PipelineBusyError(EvergraphError):
    """Another pipeline kept the home's pipeline lock longer than the wait allowed; nothing was done."""


class RegistryError(EvergraphError):
    """A tracking or registry operation cannot be done as asked (missing snapshot, unknown version, ...)."""


class ManifestError(RegistryError):
    """Downloaded model files do not match their ``manifest.json`` (missing, extra or changed files)."""


class InsecureServeError(EvergraphError):
    """The knowledge server was asked to listen beyond this machine without a token (and without ``--insecure``)."""
