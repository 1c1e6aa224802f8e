"""Reading one TSV/CSV export of labelled triples: ``head, relation, tail`` per row, header optional.

A first row reading ``head, relation, tail`` (or ``subject, predicate, object``; any case) is a header. Labels are
ids as they are, and also their readable names. CSV follows RFC 4180 quoting (Python's ``csv``); TSV is split on
tabs. Every bad row is a problem at ``file:line``: a row without exactly three fields, and any field that breaks the
rules every source shares (:func:`evergraph.kg.engine.ingest.text_field_problem`: empty, whitespace around it,
control or invisible characters, too long), invalid UTF-8. A leading byte order mark is dropped and counted.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from evergraph.kg.engine.ingest import text_field_problem
from evergraph.kg.errors import Problem

__all__ = ["TableContent", "read_table"]

_HEADERS = ({"head", "relation", "tail"}, {"subject", "predicate", "object"})
_FIELDS = ("head", "relation", "tail")


@dataclass
class TableContent:
    """The facts of one table export (file order, no repeats), the repeats dropped and the problems found."""

    facts: list[tuple[str, str, str]] = field(default_factory=list)
    duplicates: int = 0
    problems: list[Problem] = field(default_factory=list)
    bom_stripped: bool = False


def _is_header(row: list[str]) -> bool:
    lowered = [value.strip().lower() for value in row]
    return len(lowered) == 3 and any(lowered == [*names] or set(lowered) == names for names in _HEADERS)


def _field_problems(where: str, line: int, row: list[str]) -> list[Problem]:
    if len(row) != 3:
        return [Problem(where, line, f"expected 3 fields (head, relation, tail), found {len(row)}")]
    problems = []
    for name, value in zip(_FIELDS, row, strict=True):
        reason = text_field_problem(value, name=name)  # the field rules every source shares
        if reason is not None:
            problems.append(Problem(where, line, reason))
    return problems


def read_table(path: Path, *, delimiter: str) -> TableContent:
    """Read the TSV (``delimiter="\\t"``) or CSV (``","``) file ``path``; problems are collected, never raised."""
    where = str(path)
    content = TableContent()
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):  # a leading byte order mark is dropped and counted, as for lkge files
        data, content.bom_stripped = data[3:], True
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        content.problems.append(Problem(where, line, f"invalid UTF-8 (byte {error.start} of the file)"))
        return content
    seen: set[tuple[str, str, str]] = set()
    if delimiter == "\t":
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        rows = ((number, line.split("\t")) for number, line in enumerate(lines, start=1))
    else:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
        rows = _csv_rows(reader, where, content)
    for number, row in rows:
        if number == 1 and _is_header(row):
            continue
        if row == [""] or not row:
            content.problems.append(Problem(where, number, "empty line"))
            continue
        problems = _field_problems(where, number, row)
        if problems:
            content.problems.extend(problems)
            continue
        triple = (row[0], row[1], row[2])
        if triple in seen:
            content.duplicates += 1
            continue
        seen.add(triple)
        content.facts.append(triple)
    return content


def _csv_rows(reader: csv.Iterator[list[str]] | object, where: str, content: TableContent):  # noqa: ANN201
    line = 0
    iterator = iter(reader)  # type: ignore[call-overload]
    while True:
        try:
            row = next(iterator)
        except StopIteration:
            return
        except csv.Error as error:
            content.problems.append(Problem(where, reader.line_num, f"CSV syntax: {error}"))  # type: ignore[attr-defined]
            return
        line = reader.line_num  # type: ignore[attr-defined]
        yield line, row
