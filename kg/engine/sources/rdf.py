"""Reading one RDF export (N-Triples or Turtle) into facts, names and a count of attributes.

Ids: an IRI is its text (``http://example.org/Ada``), a blank node ``_:`` + its id (blank node ids are scoped to
one file, so a dump's blank nodes only keep their identity across dumps when the exporter keeps the ids stable);
``rdfs:label`` / ``schema:name`` literals become readable names; any other literal-valued triple is an attribute:
counted, not a fact (a link-prediction model has no entity to give a literal).

Parsing, fastest first, each exact for the subset it accepts and handing anything else to the next:

1. lines of three IRIs (``<s> <p> <o> .``, the bulk of a real export) are checked in bulk over the file's bytes
   (forbidden bytes, the ``<``/``>`` framing of every term and one ``.`` ending every line, by C-level counts)
   and split on whitespace, with no Python work per term; the few lines holding a literal (names, attributes) go
   through the regular expression of step 2;
2. N-Triples lines in the common plain form (IRIs or blank nodes, simple literals) are read by one regular
   expression over the whole file, several times faster than building a Python object per term;
3. everything else (escapes, comments after a triple, Turtle) goes through ``pyoxigraph``, a complete RDF 1.1
   parser.
Every bad N-Triples line is reported with its line and byte offset; a Turtle file stops at its first syntax error
(the grammar cannot resynchronise), reported the same way.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from evergraph.kg.errors import Problem

__all__ = ["NAME_PREDICATES", "RdfContent", "read_rdf"]

NAME_PREDICATES = frozenset(
    {
        "http://www.w3.org/2000/01/rdf-schema#label",
        "http://schema.org/name",
        "https://schema.org/name",
    }
)
"""Predicates whose literal object is the subject's readable name."""

_IRI = r'<([^<>"{}|^`\\\x00-\x20]*)>'
_BLANK = r"(_:[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_\-])?)"
_LITERAL = r'"([^"\\\n\r]*)"(?:@([a-zA-Z]+(?:-[a-zA-Z0-9]+)*)|\^\^<[^<>"{}|^`\\\x00-\x20]*>)?'
_PLAIN_LINE = re.compile(
    rf"^[ \t]*(?:{_IRI}|{_BLANK})[ \t]+{_IRI}[ \t]+(?:{_IRI}|{_BLANK}|{_LITERAL})[ \t]*\.[ \t]*(?:#[^\n]*)?$",
    re.MULTILINE,
)
_LITERAL_LINE = re.compile(
    rf"^[ \t]*(?:{_IRI}|{_BLANK})[ \t]+{_IRI}[ \t]+{_LITERAL}[ \t]*\.[ \t]*(?:#[^\n]*)?$", re.MULTILINE
)
"""A line of :data:`_PLAIN_LINE` whose object is a literal (the quoted lines of the bulk path)."""
_POSITION = re.compile(r"^Parser error at line [0-9]+ (?:column [0-9]+|between columns [0-9]+ and [0-9]+):")
_SKIPPED_LINE = re.compile(r"^[ \t]*(?:#[^\n]*)?$", re.MULTILINE)  # blank lines and comments


@dataclass
class RdfContent:
    """What one export holds: ``facts`` (``(head, relation, tail)`` labels, file order, no repeats), ``names``
    (id -> readable name), ``attributes`` (literal-valued triples that are not names) and ``duplicates``."""

    facts: list[tuple[str, str, str]] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    attributes: int = 0
    duplicates: int = 0
    problems: list[Problem] = field(default_factory=list)
    bom_stripped: bool = False


def _clean_name(text: str) -> str:
    return " ".join(text.split())


class _Collector:
    def __init__(self) -> None:
        self.content = RdfContent()
        self._seen: set[tuple[str, str, str]] = set()
        self._name_lang: dict[str, str | None] = {}

    def fact(self, head: str, relation: str, tail: str) -> None:
        row = (head, relation, tail)
        if row in self._seen:
            self.content.duplicates += 1
            return
        self._seen.add(row)
        self.content.facts.append(row)

    def literal(self, subject: str, predicate: str, value: str, language: str | None) -> None:
        if predicate not in NAME_PREDICATES:
            self.content.attributes += 1
            return
        name = _clean_name(value)
        if not name:
            return
        previous = self._name_lang.get(subject, "")
        # the first name wins, except that an English or untagged name replaces one in another language
        if subject not in self.content.names or (previous not in (None, "en") and language in (None, "en")):
            self.content.names[subject] = name
            self._name_lang[subject] = language.lower() if language else None


def _line_starts(data: bytes) -> list[int]:
    starts = [0]
    find = data.find
    position = find(b"\n")
    while position >= 0:
        starts.append(position + 1)
        position = find(b"\n", position + 1)
    return starts


def _read_plain_ntriples(text: str, collector: _Collector) -> bool:
    """The fast path: True when every line is a plain triple, a comment or blank (then all are collected)."""
    matches = _PLAIN_LINE.findall(text)
    lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    if len(matches) != lines:  # blank lines and comments are fine; anything else needs the full parser
        skipped = len(_SKIPPED_LINE.findall(text)) - (1 if text.endswith("\n") else 0)
        if len(matches) + skipped != lines:
            return False
    # one comprehension per kind of row: far cheaper than a Python call per triple
    rows = [(s1 or s2, p, o1 or o2) for s1, s2, p, o1, o2, _, _ in matches if o1 or o2]
    unique = list(dict.fromkeys(rows))
    content = collector.content
    content.facts = unique
    content.duplicates = len(rows) - len(unique)
    collector._seen = set(unique)
    if len(rows) != len(matches):
        for s1, s2, p, o1, o2, literal, language in matches:
            if not (o1 or o2):
                collector.literal(s1 or s2, p, literal, language or None)
    return True


_IRI_TERM = r'^<[^<>"{}|^`\\\x00-\x20]*>$'
"""One IRI term of a line of three IRIs (RE2 syntax, the same characters as :data:`_IRI`)."""


def _split_literal_lines(data: bytes) -> tuple[bytes, list[bytes]]:
    """``data`` without its lines that hold a ``"`` (a literal, or something only the slower paths read), and
    those lines, in file order. Everything before the first such line is kept whole (exports that write names
    and attributes at the end cost nothing more); the rest is split into lines."""
    first = data.find(b'"')
    if first < 0:
        return data, []
    begin = data.rfind(b"\n", 0, first) + 1
    lines = data[begin:].split(b"\n")
    quoted = [line for line in lines if b'"' in line]
    rest = [line for line in lines if b'"' not in line and line]
    if not rest:
        return data[:begin], quoted
    return data[:begin] + b"\n".join(rest), quoted


def _iri_table(body: bytes) -> tuple[list[list[str]], int] | None:
    """The columns (head, relation, tail labels) of the unique triples of ``body``, a block of lines of three IRIs
    and a ``.`` (blank lines allowed), in file order, and the number of lines read; None when any line is anything
    else.

    The columns are read by Arrow's C++ CSV reader (space-delimited, no quoting) and deduplicated on dictionary
    codes, so no Python object is made per term: only one per distinct term and one per unique fact. Exactness:
    every line has exactly four fields split on single spaces (else Arrow refuses the block, as it refuses invalid
    UTF-8), the fourth is ``.``, and each distinct term of the three others is one IRI (:data:`_IRI_TERM`, which
    leaves no room for tabs, controls or another ``<``/``>``)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    if not body or body.isspace():  # (no copy of the block, unlike strip())
        return [[], [], []], 0
    columns = ["head", "relation", "tail", "end"]
    try:
        table = pacsv.read_csv(
            pa.py_buffer(body),
            read_options=pacsv.ReadOptions(column_names=columns, use_threads=False, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(
                delimiter=" ", quote_char=False, escape_char=False, double_quote=False, newlines_in_values=False
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(columns, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowException:  # a line with another number of fields, invalid UTF-8, ...
        return None
    rows = table.num_rows
    if rows and not pc.all(pc.equal(table["end"], ".")).as_py():
        return None
    encoded = [table[name].combine_chunks().dictionary_encode() for name in columns[:3]]
    for column in encoded:  # every distinct term once: one IRI each
        if len(column.dictionary) and not pc.all(pc.match_substring_regex(column.dictionary, _IRI_TERM)).as_py():
            return None
    codes = [e.indices.to_numpy(zero_copy_only=False).astype(np.int64) for e in encoded]
    sizes = [len(e.dictionary) for e in encoded]
    if sizes[0] * sizes[1] * sizes[2] < 2**62:
        _, first = np.unique((codes[0] * sizes[1] + codes[1]) * sizes[2] + codes[2], return_index=True)
    else:
        _, first = np.unique(np.stack(codes, axis=1), axis=0, return_index=True)
    first.sort()  # the first occurrence of each fact, in file order
    labels = [[text[1:-1] for text in e.dictionary.to_pylist()] for e in encoded]
    unique = [list(map(label.__getitem__, code[first].tolist())) for label, code in zip(labels, codes, strict=True)]
    return unique, rows


def _read_iri_ntriples(data: bytes, collector: _Collector) -> bool:
    """The fastest path: True when every line is three IRIs and a ``.`` (:func:`_iri_table`), blank, or holds a
    ``"`` and is a plain literal triple of :data:`_LITERAL_LINE` (then all are collected); False, collecting
    nothing, on anything else."""
    body, quoted = _split_literal_lines(data)
    literals: list[tuple[str, ...]] = []
    if quoted:
        try:
            text = b"\n".join(quoted).decode("utf-8")
        except UnicodeDecodeError:
            return False
        literals = _LITERAL_LINE.findall(text)
        if len(literals) != len(quoted):
            return False  # a line it does not read, or an IRI/blank-node object: the slower paths keep file order
        names = [match for match in literals if match[2] in NAME_PREDICATES]
    table = _iri_table(body)
    if table is None:
        return False
    columns, rows = table
    content = collector.content
    content.facts = list(zip(*columns, strict=True))
    content.duplicates = rows - len(content.facts)
    if quoted:
        content.attributes = len(literals) - len(names)
        for s1, s2, p, literal, language in names:
            collector.literal(s1 or s2, p, literal, language or None)
    return True


def _term_id(term: object) -> str:
    import pyoxigraph as ox

    if isinstance(term, ox.BlankNode):
        return f"_:{term.value}"
    return str(term.value)  # type: ignore[attr-defined]


def _read_with_pyoxigraph(data: bytes, *, turtle: bool, where: str, collector: _Collector) -> None:
    import pyoxigraph as ox

    fmt = ox.RdfFormat.TURTLE if turtle else ox.RdfFormat.N_TRIPLES
    starts = _line_starts(data)

    def parse_all(chunk: bytes, first_line: int) -> Problem | None:
        try:
            for triple in ox.parse(io.BytesIO(chunk), format=fmt):
                obj = triple.object
                if isinstance(obj, ox.Literal):
                    collector.literal(_term_id(triple.subject), str(triple.predicate.value), obj.value, obj.language)
                elif isinstance(obj, ox.Triple):
                    collector.content.attributes += 1  # RDF-star quoted triples: not a fact of the graph
                else:
                    collector.fact(_term_id(triple.subject), str(triple.predicate.value), _term_id(obj))
        except SyntaxError as error:
            last_line = first_line + chunk.count(b"\n") - (1 if chunk.endswith(b"\n") else 0)
            line = first_line + max(int(error.lineno or 1), 1) - 1
            column = max(int(error.offset or 1), 1) - 1
            if line > last_line:  # the parser hit the end of the input: the problem is at the end of the last line
                line, column = last_line, len(chunk.rstrip(b"\n").split(b"\n")[-1].decode("utf-8", "replace"))
            begin = starts[line - 1] if line - 1 < len(starts) else len(data)
            byte = begin + len(data[begin:].decode("utf-8", "replace")[:column].encode("utf-8"))
            message = _POSITION.sub("", str(error.msg or error)).strip() or "syntax error"
            return Problem(where, line, f"byte {byte}: {message}")
        return None

    if turtle:
        problem = parse_all(data, 1)
        if problem is not None:
            collector.content.problems.append(problem)
        return
    # N-Triples is line based: parse line by line so that every bad line is reported, not only the first
    for number, begin in enumerate(starts, start=1):
        end = starts[number] if number < len(starts) else len(data)
        line = data[begin:end]
        if not line.strip():
            continue
        problem = parse_all(line, number)
        if problem is not None:
            collector.content.problems.append(problem)


def read_rdf(path: Path, *, turtle: bool) -> RdfContent:
    """Read the N-Triples (``turtle=False``) or Turtle file ``path``; problems are collected, never raised."""
    where = str(path)
    collector = _Collector()
    data = path.read_bytes()
    bom = data.startswith(b"\xef\xbb\xbf")  # a leading byte order mark is dropped and counted, as for lkge files
    if bom:
        data = data[3:]
    if not turtle and _read_iri_ntriples(data, collector):
        collector.content.bom_stripped = bom
        return collector.content
    collector = _Collector()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        collector.content.problems.append(Problem(where, line, f"byte {error.start}: invalid UTF-8"))
        return collector.content
    if turtle or not _read_plain_ntriples(text, collector):
        collector = _Collector()  # start again with the complete parser
        _read_with_pyoxigraph(data, turtle=turtle, where=where, collector=collector)
    collector.content.bom_stripped = bom
    return collector.content
