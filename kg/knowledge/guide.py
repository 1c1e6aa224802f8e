"""Parametric knowledge guiding: turn a question into the cited knowledge a black-box LLM needs.

:meth:`Guide.guide` works in five steps on one serving bundle (:class:`kg.Bundle`):

1. **Linking** (:class:`evergraph.kg.knowledge.linking.Linker`: exact names and aliases, partial names such as
   "Obama" or "the Lakers", then text similarity): an entity candidate's score is its linking score times how well
   it agrees with its place in the question: the share of its mention it covers (a name matching part of a
   longer capitalised run, "Hawaii" in "What is the webpage of Hawaii County?", covers 6/13 of it: the question
   is probably about something else), for text matches the edit similarity of mention and name instead of the
   cosine that found it (a typo keeps ~0.9), and a halving for a proper name matched by lower-case words ("the
   artist" is not the film "The Artist"); candidates scoring at least ``min_entity_score`` (at most
   ``max_entities``) anchor the question.
2. **What the question asks** (:meth:`Guide._signal`): the question without the anchors' names ("Where did
   go to college?") is encoded once by the linker's relation encoder (by default the MiniLM sentence encoder
   when installed, else the character encoder) and compared with every relation's readable names, encoded once
   per bundle (``/education/educational_institution/students_graduates./education/education/student`` ->
   "educational institution students graduates education student"); a relation's *strength* is the best cosine
   (or its exact linking score). Scores are relative: 1 for the strongest relation, falling to 0 at
   ``relation_window`` below it, all scaled down when the strongest is under ``min_relation_score``. Relations
   scoring at least ``1 - relation_margin`` with a strength of at least ``min_relation_score`` (at most
   ``max_relations``) are *asked for*. The **answer kind** (:mod:`evergraph.kg.knowledge.answers`: "who" -> a
   person, "where"/"which country" -> a place, "when"/"what year" -> a date) is a signal too: a candidate whose
   answer end is known to be of another kind counts ``answer_kind_weight`` (0.6) as much.
3. **Known facts, one and two hops**: a fact of anchor ``a`` (linking score ``s_a``) with relation ``r`` scores
   ``s_a * (0.4 + 0.6 * score(r)) * kind factor``: a fact of the asked relation up to 1, any other fact of the
   entity 0.4 (the question is about the entity, the relation is unknown). A fact joining two anchors scores at
   least the lower of their linking scores. With ``hops=2`` (default), the ``max_neighbours`` neighbours whose
   joining relation the question points at most are expanded: a *path* ``a -r1-> m -r2-> o`` scores ``s_a *
   (0.2 + 0.6 * score(r1, r2)) * kind factor``, where the path's score is the cosine of the question with the
   sum of the two relations' name vectors (from the cosines with each and the relations' own cosine: a
   composition such as place of birth then contained by, for "Which country was X born in?"); paths back the way
   they came (the other people born in the same city) are left out. Facts below ``min_relevance`` are dropped;
   the best ``max_known`` are kept, with a little diversity across relations, a two-hop fact always together
   with the fact that joins it to the anchor (both count).
4. **Inferred facts**: each (anchor, asked relation scoring at least ``1 - inferred_margin``: a guess about a
   merely similar relation is noise) pair is asked in both directions through the bundle's FAISS
   index (:func:`evergraph.kg.knowledge.inference.infer`: known answers excluded, so a known fact is never
   repeated); answers with a calibrated confidence of at least ``min_confidence`` are kept, the best
   ``max_inferred`` by ``s_a * score(r) * confidence``. An answer whose type does not fit the relation's domain
   and range as the known facts show them is never offered (``infer(..., typed=True)``,
   :mod:`evergraph.kg.knowledge.types`).
5. **Context**: each fact becomes a sentence from the name files ("Jeremy Irons — place of birth: Cowes."),
   numbered for citation (``[1]``), marked known (with its snapshot; a two-hop fact also ``via [n]``, the fact
   that joins it to the question's entity) or inferred (with its confidence), under a header naming the model
   version and snapshot. Facts are added by priority while the context stays within ``max_context_tokens``
   (estimated as one token per 4 characters, rounded up; a two-hop fact only with its joining fact); the rest
   are counted in ``dropped_facts``. Known facts are listed first, by relevance.

**Abstention**: when no entity links above ``min_entity_score``, or no fact passes the bars, the result has
``abstained=True``, a ``reason`` and the configurable ``abstain_message``, and no prompt: nothing is sent to an
LLM, so it cannot guess.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from evergraph.kg.knowledge.answers import EntityKinds, expected_kind
from evergraph.kg.knowledge.explain import cite_reasons
from evergraph.kg.knowledge.inference import infer
from evergraph.kg.knowledge.linking import STOPWORDS, LinkCandidate, Linker, case_informative, relation_text
from evergraph.kg.knowledge.schemas import ChatMessage, EntityRef, Fact, GuideResult, LinkedItem, RelationRef
from evergraph.kg.knowledge.text import normalize_text, one_torch_thread, word_spans
from evergraph.kg.knowledge.types import role_types

if TYPE_CHECKING:
    from evergraph.kg.store.bundle import Bundle

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_SYSTEM_PROMPT", "Guide", "GuideConfig", "edit_similarity", "estimate_tokens", "relation_phrase"]

DEFAULT_SYSTEM_PROMPT = (
    "You answer questions with the numbered facts from a knowledge graph that the user gives you. Use only those "
    "facts and cite every fact you use by its number in square brackets, like [1]. Facts marked inferred are "
    "predictions with the given confidence: say so when you rely on one. If the facts do not answer the question, "
    "say that you do not know."
)
DEFAULT_ABSTAIN_MESSAGE = "The knowledge graph holds nothing about this question, so no answer is given."

_HOP_DECAY = 0.8
_HOP_BASE = 0.2
_BASE_RELEVANCE = 0.4
_REPEAT_DECAY = 0.8


@dataclasses.dataclass(frozen=True)
class _Signal:
    """What a question asks about: per relation, ``strength`` (best cosine of the question with its name or
    aliases, or its linking score), ``named`` (cosine with its name alone, for paths) and ``scores`` (relative:
    1 for the best relation, 0 for those ``relation_window`` below it, all scaled down when the best is weaker
    than ``min_relation_score``), the best strength ``top``, that scale ``confidence``, and the answer ``kind``."""

    strength: np.ndarray
    scores: np.ndarray
    named: np.ndarray
    top: float
    confidence: float
    kind: str | None


class GuideConfig(BaseModel):
    """How the guide links, retrieves and composes (module docstring); every field has a default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hops: int = Field(2, ge=1, le=2, description="1: facts of the linked entities; 2: also two-hop paths")
    min_entity_score: float = Field(0.7, ge=0, le=1, description="linking score an anchor entity needs")
    max_entities: int = Field(3, ge=1, le=20)
    min_relation_score: float = Field(0.4, ge=0, le=1, description="score a relation needs to be asked for")
    relation_margin: float = Field(0.25, ge=0, le=1, description="asked relations score within this of the best")
    inferred_margin: float = Field(
        0.1,
        ge=0,
        le=1,
        description="inferred facts only for asked relations scoring within this of the best (a guess about a "
        "neighbouring relation is noise: 'headquartered in' for 'located in')",
    )
    max_relations: int = Field(3, ge=0, le=20)
    max_known: int = Field(8, ge=0, le=100)
    max_inferred: int = Field(4, ge=0, le=100)
    predictions_per_query: int = Field(5, ge=1, le=100)
    max_neighbours: int = Field(20, ge=0, le=1000, description="neighbours expanded when hops=2")
    relation_window: float = Field(
        0.2, gt=0, le=1, description="relations this far below the best one score 0 for the question"
    )
    answer_kind_weight: float = Field(
        0.6, ge=0, le=1, description="relevance factor of a fact whose answer is not of the kind asked for"
    )
    min_relevance: float = Field(0.3, ge=0, le=1)
    min_confidence: float = Field(0.15, ge=0, le=1)
    max_context_tokens: int = Field(600, ge=128, le=32000)
    abstain_message: str = DEFAULT_ABSTAIN_MESSAGE
    system_prompt: str = DEFAULT_SYSTEM_PROMPT


def estimate_tokens(text: str) -> int:
    """Tokens ``text`` is budgeted at: one per 4 characters, rounded up (close for English BPE tokenisers)."""
    return math.ceil(len(text) / 4)


def relation_phrase(label: str, name: str | None) -> str:
    """The phrase a fact is written with: a readable ``name`` when it is more than the label's words, else the
    last segment of a Freebase path (``/people/person/place_of_birth`` -> ``place of birth``), with the compound
    node's property when it adds words (``/people/person/spouse_s./people/marriage/location_of_ceremony`` ->
    ``spouse / location of ceremony``), else the label's words (``born_in`` -> ``born in``)."""
    if name and normalize_text(name) != normalize_text(relation_text(label)):
        return name.strip()
    if label.startswith("/"):
        parts = [[s for s in part.split("/") if s] for part in label.split(".")]
        if parts[0]:
            phrase = _plural_s(relation_text(parts[0][-1]))
            last = _plural_s(relation_text(parts[-1][-1])) if len(parts) > 1 and parts[-1] else phrase
            if set(last.split()) - set(phrase.split()):  # a compound (CVT) path: what it leads to, too
                return f"{phrase} / {last}"
            return phrase
    return relation_text(label)


def _plural_s(words: str) -> str:
    """``spouse s`` (Freebase's ``spouse_s``) -> ``spouse``."""
    return words[:-2] if words.endswith(" s") else words


class Guide:
    """Knowledge guiding over one loaded ``bundle``.

    ``linker`` defaults to :meth:`Linker.from_bundle` with the ``hashing`` encoder; ``config`` to
    ``GuideConfig()``.
    """

    def __init__(self, bundle: Bundle, *, linker: Linker | None = None, config: GuideConfig | None = None) -> None:
        self.bundle = bundle
        self.linker = linker if linker is not None else Linker.from_bundle(bundle)
        self.config = config or GuideConfig()
        labels = bundle.relations.labels
        self._phrases = [relation_phrase(label, bundle.relation_names.get(label)) for label in labels]
        # relation names encoded once per bundle: their pairwise cosines score two-hop paths
        vectors = self.linker.relation_name_vectors()
        self._gram = np.clip(vectors @ vectors.T, -1, 1)
        self._semantic = self.linker.relation_encoder.name != "hashing"
        self._kinds = EntityKinds(bundle)
        self._adjacency = _Adjacency(bundle.facts.facts.numpy(), num_entities=len(bundle.entities))

    def __repr__(self) -> str:
        return f"Guide(version={self.bundle.version!r}, snapshot={self.bundle.snapshot}, {self.config!r})"

    # -- names ----------------------------------------------------------------------------------------------

    def entity_ref(self, entity: int) -> EntityRef:
        """The id, label and readable name of entity ``entity``."""
        label = self.bundle.entities.label(entity)
        return EntityRef(id=entity, label=label, name=self.bundle.entity_names.get(label, label))

    def relation_ref(self, relation: int, *, inverse: bool = False) -> RelationRef:
        """The id, label and phrase of base relation ``relation``."""
        return RelationRef(
            id=relation, label=self.bundle.relations.label(relation), name=self._phrases[relation], inverse=inverse
        )

    def fact(
        self,
        head: int,
        relation: int,
        tail: int,
        *,
        kind: str,
        score: float,
        confidence: float | None = None,
        snapshot: int | None = None,
        hop: int | None = None,
    ) -> Fact:
        """A :class:`Fact` with its sentence: ``"<head> — <relation phrase>: <tail>."``."""
        h, r, t = self.entity_ref(head), self.relation_ref(relation), self.entity_ref(tail)
        return Fact(
            head=h,
            relation=r,
            tail=t,
            kind=kind,  # type: ignore[arg-type]
            score=round(float(score), 6),
            confidence=None if confidence is None else round(float(confidence), 6),
            snapshot=snapshot,
            hop=hop,
            text=f"{h.name} — {r.name}: {t.name}.",
        )

    # -- guiding ----------------------------------------------------------------------------------------------

    def guide(self, question: str) -> GuideResult:
        """Link, retrieve and compose the cited context for ``question`` (module docstring), on one torch
        thread (:func:`evergraph.kg.knowledge.text.one_torch_thread`: a question's small products gain nothing from
        more)."""
        with one_torch_thread():
            return self._guide(question)

    def _guide(self, question: str) -> GuideResult:
        cfg = self.config
        bundle = self.bundle
        # a few more candidates than anchors: some may lose their place when checked against the question
        k_relations = 0 if self._semantic else max(cfg.max_relations, 1)
        link = self.linker.link(question, k_entities=cfg.max_entities + 3, k_relations=k_relations)
        mentions, cased = self.linker.mentions(question), case_informative(question)
        candidates = [
            dataclasses.replace(c, score=_agreement(question, c, mentions, cased=cased)) for c in link.entities
        ]
        candidates.sort(key=lambda c: -c.score)  # stable: the linker's order among equal scores
        anchors = [c for c in candidates if c.score >= cfg.min_entity_score][: cfg.max_entities]
        base: dict[str, Any] = {"question": question, "version": bundle.version, "snapshot": bundle.snapshot}
        if not anchors:
            return GuideResult(
                **base,
                abstained=True,
                reason="no entity of the question is in the knowledge graph",
                message=cfg.abstain_message,
                entities=[_linked(c) for c in candidates],
            )
        signal = self._signal(question, link.relations, anchors)
        base["answer_kind"] = signal.kind
        relation_scores = signal.scores
        order = np.argsort(-relation_scores, kind="stable")[: cfg.max_relations].tolist()
        asked = [r for r in order if float(relation_scores[r]) >= max(cfg.min_relation_score, 1 - cfg.relation_margin)]
        asked = [r for r in asked if float(signal.strength[r]) >= cfg.min_relation_score]
        known, parents = self._known(anchors, signal)
        inferred = self._inferred(anchors, asked, relation_scores, kind=signal.kind)
        relations = [
            LinkedItem(
                id=r,
                label=bundle.relations.label(r),
                name=self._phrases[r],
                score=round(float(signal.strength[r]), 6),
                match=next((c.match for c in link.relations if c.id == r), "text"),
                span=next((c.span for c in link.relations if c.id == r), None),
            )
            for r in asked
        ]
        entities = [_linked(c) for c in anchors]
        if not known and not inferred:
            return GuideResult(
                **base,
                abstained=True,
                reason="no known or inferred fact passes the relevance and confidence bars",
                message=cfg.abstain_message,
                entities=entities,
                relations=relations,
            )
        facts, context, tokens, dropped = self._compose(known, inferred, parents)
        facts, context, tokens = cite_reasons(self, facts, context, anchors={a.id for a in anchors})  # issue 10
        if not facts:
            return GuideResult(
                **base,
                abstained=True,
                reason=f"no fact fits the context budget of {cfg.max_context_tokens} tokens",
                message=cfg.abstain_message,
                entities=entities,
                relations=relations,
                dropped_facts=dropped,
            )
        prompt = [
            ChatMessage(role="system", content=cfg.system_prompt),
            ChatMessage(role="user", content=f"{context}\n\nQuestion: {question}"),
        ]
        return GuideResult(
            **base,
            abstained=False,
            entities=entities,
            relations=relations,
            facts=facts,
            context=context,
            context_tokens=tokens,
            dropped_facts=dropped,
            prompt=prompt,
        )

    # -- what the question asks -------------------------------------------------------------------------------

    def _signal(self, question: str, linked: list[LinkCandidate], anchors: list[LinkCandidate]) -> _Signal:
        """How much each relation (and each pair of relations, as a path) is what ``question`` asks about, and
        the kind of answer it wants."""
        cfg = self.config
        spans = sorted(c.span for c in anchors if c.span is not None)
        if self._semantic:  # the question as written, without the entity names: "Where was born?"
            pieces, at = [], 0
            for begin, end in spans:
                if begin >= at:
                    pieces.append(question[at:begin])
                    at = end
            text = " ".join(" ".join(pieces + [question[at:]]).split())
        else:  # the hashing encoder: content words only
            text = " ".join(
                question[b:e]
                for word, b, e in word_spans(question)
                if word not in STOPWORDS and not any(s <= b and e <= t for s, t in spans)
            )
        num = self.linker.num_relations
        best = np.zeros(num)
        named = np.zeros(num)
        if text and num:
            found, name_only = self.linker.relation_similarities(text)
            best, named = found.astype(np.float64), name_only.astype(np.float64)
        for candidate in linked:  # exact (and, for hashing, fuzzy n-gram) relation matches
            best[candidate.id] = max(float(best[candidate.id]), candidate.score)
        top = float(best.max()) if num else 0.0
        # relative: the best relation 1, those ``relation_window`` below it 0; all weak when the best is weak
        confidence = min(1.0, top / cfg.min_relation_score) if cfg.min_relation_score else 1.0
        scores = np.clip(1 - (top - best) / cfg.relation_window, 0, 1) * confidence
        return _Signal(
            strength=best,
            scores=scores,
            named=named,
            top=top,
            confidence=confidence,
            kind=expected_kind(question) if self._kinds.known else None,
        )

    def _path_scores(self, signal: _Signal, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Relative scores (like ``signal.scores``) of the paths ``first`` then each of ``second``: the better of
        the cosine of the question with the sum of the two relation names' vectors, from the cosines with each
        (``(c1 + c2) / |v1 + v2|``), and the stronger relation's score times ``0.3 + 0.7 *`` a softer score of
        the weaker one (with twice the window)."""
        window = self.config.relation_window
        cosine = (signal.named[first] + signal.named[second]) / np.sqrt(2 + 2 * self._gram[first, second])
        together = np.clip(1 - (signal.top - cosine) / window, 0, 1)
        # or one relation asked for plainly and the other hinted at ("the capital of X's country"): the sharper
        # score of the stronger relation, times a softer one (twice the window) of the weaker
        high = np.maximum(signal.strength[first], signal.strength[second])
        low = np.minimum(signal.strength[first], signal.strength[second])
        hinted = np.clip(1 - (signal.top - high) / window, 0, 1) * (
            0.3 + 0.7 * np.clip(1 - (signal.top - low) / (2 * window), 0, 1)
        )
        return np.maximum(together, hinted) * signal.confidence

    def _kind_factor(self, others: np.ndarray, kind: str | None) -> np.ndarray:
        """Per answer entity: 1 when it is of the kind the question asks for (or it asks for none),
        ``answer_kind_weight`` when it is known to be of other kinds only, halfway for an entity of no known
        kind."""
        if kind is None or not len(others):
            return np.ones(len(others))
        weight = self.config.answer_kind_weight
        matches = self._kinds.matches(others, kind)  # type: ignore[arg-type]
        described = self._kinds.described(others)
        return np.where(matches, 1.0, np.where(described, weight, (1 + weight) / 2))

    # -- known facts ------------------------------------------------------------------------------------------

    def _known(self, anchors: list[LinkCandidate], signal: _Signal) -> tuple[list[Fact], list[int | None]]:
        """The known facts and two-hop paths most relevant to the question (module docstring), best first; with
        ``parents[i]`` the index of the fact that joins fact ``i`` to its anchor (two-hop facts), else ``None``."""
        cfg = self.config
        adjacency = self._adjacency
        linked = {c.id: c.score for c in anchors}
        weight = _BASE_RELEVANCE + (1 - _BASE_RELEVANCE) * signal.scores
        parts: list[tuple[np.ndarray, ...]] = []  # rows, relations, relevance, hop, parent row
        for anchor in anchors:
            rows, relations, others = adjacency.about(anchor.id)
            bases = relations // 2
            relevance = anchor.score * weight[bases] * self._kind_factor(others, signal.kind)
            for other, score in linked.items():
                if other != anchor.id:
                    joins = others == other
                    relevance[joins] = np.maximum(relevance[joins], min(anchor.score, score))
            parts.append((rows, bases, relevance, np.ones(len(rows)), np.full(len(rows), -1)))
            if cfg.hops == 2 and len(rows) and cfg.max_neighbours:
                parts.extend(self._second_hop(anchor, rows, relations, others, signal, linked))
        rows, relations, relevance, hops, parent_rows = (np.concatenate(column) for column in zip(*parts, strict=True))
        keep = np.flatnonzero(relevance >= cfg.min_relevance)
        if not len(keep):
            return [], []
        # one entry per fact (a fact reached twice keeps its best relevance; one hop wins ties)
        keep = keep[np.lexsort((hops[keep], -relevance[keep]))]
        keep = keep[np.sort(np.unique(rows[keep], return_index=True)[1])]
        rows, relations, relevance, hops, parent_rows = (
            rows[keep],
            relations[keep],
            relevance[keep],
            hops[keep],
            parent_rows[keep],
        )
        # greedy choice with a little diversity: each fact already chosen with the same relation lowers the
        # priority of the next one by _REPEAT_DECAY, so a hub's 500 facts of one relation do not fill the context;
        # a two-hop fact brings the fact that joins it to the anchor (both count against max_known)
        chosen: dict[int, float] = {}  # fact row -> relevance in the context
        hop_of: dict[int, int] = {}
        parent_of: dict[int, int] = {}
        factor = np.ones(self.bundle.model.num_relations)  # _REPEAT_DECAY ** facts chosen with the relation
        priority = relevance.copy()
        while len(chosen) < cfg.max_known:
            pick = int(priority.argmax())
            if priority[pick] < 0:
                break  # nothing left
            priority[pick] = -1.0
            row, score, parent = int(rows[pick]), float(relevance[pick]), int(parent_rows[pick])
            if row in chosen:
                continue
            if parent >= 0 and parent not in chosen:
                if len(chosen) + 2 > cfg.max_known:
                    continue
                chosen[parent], hop_of[parent] = score, 1
            elif parent >= 0:
                chosen[parent] = max(chosen[parent], score)
            chosen[row], hop_of[row] = score, int(hops[pick])
            if parent >= 0:
                parent_of[row] = parent
            relation = int(relations[pick])
            factor[relation] *= _REPEAT_DECAY
            same = np.flatnonzero((relations == relation) & (priority >= 0))
            priority[same] = relevance[same] * factor[relation]
        ranked = sorted(chosen, key=lambda row: (-chosen[row], hop_of[row], row))
        position = {row: i for i, row in enumerate(ranked)}
        result, parents = [], []
        for row in ranked:
            h, r, t, snapshot = adjacency.facts[row].tolist()
            result.append(self.fact(h, r, t, kind="known", score=chosen[row], snapshot=snapshot, hop=hop_of[row]))
            parents.append(position[parent_of[row]] if row in parent_of else None)
        return result, parents

    def _second_hop(
        self,
        anchor: LinkCandidate,
        rows: np.ndarray,
        relations: np.ndarray,
        others: np.ndarray,
        signal: _Signal,
        linked: dict[int, float],
    ) -> list[tuple[np.ndarray, ...]]:
        """Two-hop paths from ``anchor`` through the ``max_neighbours`` neighbours whose joining relation the
        question points at most: each fact of such a neighbour scores ``anchor score * (0.2 + 0.6 * path score)
        * answer kind factor`` (:meth:`_path_scores`), so a path the question does not point at (path score
        below about 0.17) stays under ``min_relevance``. Facts that lead back the way they came (the relation
        that joined the neighbour, read the other way: the other people born in the same city) are left out."""
        cfg = self.config
        bases = relations // 2
        via = signal.scores[bases] + 1e-3 * signal.strength[bases]  # ties: the closer relation
        order = np.argsort(-via, kind="stable")
        order = order[~np.isin(others[order], list(linked))]
        # the first (best) fact of the anchor to each neighbour, best first
        chosen = np.sort(np.unique(others[order], return_index=True)[1])[: cfg.max_neighbours]
        chosen = order[chosen]
        if not len(chosen):
            return []
        rows2, relations2, others2, first = self._adjacency.around(others[chosen], chosen)
        ahead = (others2 != anchor.id) & (relations2 != (relations[first] ^ 1))
        rows2, bases2, others2, first = rows2[ahead], relations2[ahead] // 2, others2[ahead], first[ahead]
        path = self._path_scores(signal, bases[first], bases2)
        relevance = (
            anchor.score * (_HOP_BASE + (_HOP_DECAY - _HOP_BASE) * path) * self._kind_factor(others2, signal.kind)
        )
        return [(rows2, bases2, relevance, np.full(len(rows2), 2), rows[first])]

    def _inferred(
        self, anchors: list[LinkCandidate], asked: list[int], relation_scores: np.ndarray, *, kind: str | None = None
    ) -> list[Fact]:
        """Inferred facts of the asked relations about the anchors; an answer known to be of another kind than the
        question asks for (``kind``) is not offered: an inferred fact is a guess, and one that cannot be the
        answer only adds noise (and errors) to the context."""
        cfg = self.config
        if not asked or not cfg.max_inferred:
            return []
        close = [r for r in asked if float(relation_scores[r]) >= 1 - cfg.inferred_margin]
        queries = [(a, 2 * r + d) for a in anchors for r in close for d in (0, 1)]
        if not queries:
            return []
        # typed inference answers nothing when the entity does not fit the relation's domain: skip the search
        domain = role_types(self.bundle.facts).fits(
            torch.tensor([a.id for a, _ in queries]), torch.tensor([r ^ 1 for _, r in queries])
        )
        queries = [query for query, fits in zip(queries, domain.tolist(), strict=True) if fits]
        if not queries:
            return []
        answers = infer(
            self.bundle,
            [a.id for a, _ in queries],
            [r for _, r in queries],
            k=cfg.predictions_per_query,
            typed=True,  # never offer an answer whose type the relation has never taken (issue 10)
        )
        best: dict[tuple[int, int, int], tuple[float, float]] = {}  # triple -> (priority, confidence)
        for (anchor, relation), found in zip(queries, answers, strict=True):
            others = np.array([t if h == anchor.id else h for h, _, t in (item.triple for item in found)])
            wrong_kind = (
                self._kinds.described(others) & ~self._kinds.matches(others, kind)  # type: ignore[arg-type]
                if kind is not None and len(others)
                else np.zeros(len(found), dtype=bool)
            )
            for item, off in zip(found, wrong_kind.tolist(), strict=True):
                if item.confidence < cfg.min_confidence or off:
                    continue
                priority = anchor.score * float(relation_scores[relation // 2]) * item.confidence
                triple = item.triple
                if triple not in best or priority > best[triple][0]:
                    best[triple] = (priority, item.confidence)
        ranked = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))[: cfg.max_inferred]
        snapshot = self.bundle.snapshot
        return [
            self.fact(h, r, t, kind="inferred", score=conf, confidence=conf, snapshot=snapshot)
            for (h, r, t), (_, conf) in ranked
        ]

    def _compose(
        self, known: list[Fact], inferred: list[Fact], parents: list[int | None] | None = None
    ) -> tuple[list[Fact], str, int, int]:
        """Choose facts by priority within the token budget (a two-hop fact only with the fact that joins it,
        ``parents``), number them (known first, in order of relevance), write the context."""
        parents = parents or [None] * len(known)
        header = (
            f"Knowledge graph facts from Evergraph model version {self.bundle.version} (trained up to snapshot "
            f"{self.bundle.snapshot}). Known facts are stated in the graph; inferred facts are predicted by its "
            "embeddings, with a calibrated confidence (the share of such predictions that were true on held-out "
            "facts)."
        )
        budget = self.config.max_context_tokens - estimate_tokens(header)
        candidates = sorted(
            [(fact.score, 0, i) for i, fact in enumerate(known)]
            + [(fact.score, 1, i) for i, fact in enumerate(inferred)],
            key=lambda item: (-item[0], item[1], item[2]),
        )
        chosen: set[tuple[int, int]] = set()
        for _, kind, i in candidates:
            fact = (known if kind == 0 else inferred)[i]
            parent = parents[i] if kind == 0 else None
            if parent is not None and (0, parent) not in chosen:
                continue  # its joining fact did not fit (it has at least the same priority, so came first)
            cost = estimate_tokens(_line(99, fact.model_copy(update={"via": 99} if parent is not None else {}))) + 1
            if cost <= budget:
                chosen.add((kind, i))
                budget -= cost
        ordered = [(0, i) for i in range(len(known)) if (0, i) in chosen]
        ordered += [(1, i) for i in range(len(inferred)) if (1, i) in chosen]
        citation = {key: n for n, key in enumerate(ordered, start=1)}
        numbered = []
        for kind, i in ordered:
            fact = (known if kind == 0 else inferred)[i]
            parent = parents[i] if kind == 0 else None
            via = citation[(0, parent)] if parent is not None else None
            numbered.append(fact.model_copy(update={"citation": citation[(kind, i)], "via": via}))
        context = "\n".join([header, *(_line(fact.citation, fact) for fact in numbered)])
        return numbered, context, estimate_tokens(context), len(known) + len(inferred) - len(numbered)


class _Adjacency:
    """The known facts seen from each end, grouped by entity (CSR arrays built once per bundle): the facts about
    an entity, or about many, are slices, without a binary search per entity. Rows are ordered like
    :meth:`evergraph.kg.store.facts.FactTable.about_arrays` (by model relation, then other end)."""

    def __init__(self, facts: np.ndarray, *, num_entities: int) -> None:
        self.facts = facts  # [n, 4] (head, relation, tail, snapshot)
        n = len(facts)
        rows = np.concatenate([np.arange(n), np.arange(n)])
        entity = np.concatenate([facts[:, 0], facts[:, 2]])
        relation = np.concatenate([2 * facts[:, 1], 2 * facts[:, 1] + 1])
        other = np.concatenate([facts[:, 2], facts[:, 0]])
        order = np.lexsort((other, relation, entity))
        self.rows, self.relations, self.others = rows[order], relation[order], other[order]
        self.offsets = np.searchsorted(entity[order], np.arange(num_entities + 1))

    def about(self, entity: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(fact rows, model relations, other ends)`` of every fact about ``entity``."""
        begin, end = self.offsets[entity], self.offsets[entity + 1]
        return self.rows[begin:end], self.relations[begin:end], self.others[begin:end]

    def around(self, entities: np.ndarray, tags: np.ndarray) -> tuple[np.ndarray, ...]:
        """``(fact rows, model relations, other ends, tag)`` of every fact about each of ``entities``, entity by
        entity, each with the ``tags`` entry of its entity."""
        begin = self.offsets[entities]
        lengths = self.offsets[entities + 1] - begin
        at = np.repeat(begin - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
        return self.rows[at], self.relations[at], self.others[at], np.repeat(tags, lengths)


def _agreement(question: str, candidate: LinkCandidate, mentions: list[tuple[int, int]], *, cased: bool) -> float:
    """The score a linked name keeps as an anchor, in ``[0, 1]``: its linking score times the share of its mention
    it covers (:func:`_coverage`), and times 0.5 for a capitalised name ("The Artist", "Screenwriter") matched
    exactly by lower-case words in a question whose case is informative ("what is the artist of ...", "Who is
    the screenwriter of Munich?"). A text match is verified against the words it was found from: its score is
    the edit similarity of the two
    (:func:`edit_similarity`; a typo keeps about 0.9, "Knight" for "T. R. Knight" 0.5), not the cosine that
    retrieved it."""
    coverage = _coverage(candidate.span, mentions)
    score = candidate.score * coverage
    if candidate.match == "partial":  # "Obama": scored by the linker from how many names hold the words
        return score
    if candidate.span is not None:
        text = question[candidate.span[0] : candidate.span[1]]
        if candidate.match == "text" and candidate.matched:
            return coverage * edit_similarity(text, candidate.matched)
        if cased and not any(ch.isupper() for ch in text):
            if sum(word[:1].isupper() for word in candidate.matched.split()) >= 1:
                score *= 0.5  # "the screenwriter of Munich": a common noun, not the entity "Screenwriter"
    return score


def edit_similarity(a: str, b: str) -> float:
    """``1 - levenshtein(a, b) / max(len(a), len(b))`` of the normalised texts
    (:func:`evergraph.kg.knowledge.text.normalize_text`), in ``[0, 1]``; 1 for equal texts."""
    a, b = normalize_text(a), normalize_text(b)
    if not a or not b:
        return float(a == b)
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return 1.0 - previous[-1] / max(len(a), len(b))


def _coverage(span: tuple[int, int] | None, mentions: list[tuple[int, int]]) -> float:
    """The share of its mention a match covers: 1 outside any capitalised run, else its length over the extent
    of the match joined with the runs it overlaps ("Hawaii" in "Hawaii County": 6/13)."""
    if span is None:
        return 1.0
    begin, end = span
    for run_begin, run_end in mentions:
        if run_begin < end and begin < run_end:
            begin, end = min(begin, run_begin), max(end, run_end)
    return (span[1] - span[0]) / max(end - begin, 1)


def _line(number: int, fact: Fact) -> str:
    if fact.kind == "known" and fact.via is not None:
        return f"[{number}] {fact.text} (known, snapshot {fact.snapshot}, via [{fact.via}])"
    if fact.kind == "known":
        return f"[{number}] {fact.text} (known, snapshot {fact.snapshot})"
    return f"[{number}] {fact.text} (inferred, confidence {fact.confidence:.2f})"


def _linked(candidate: LinkCandidate) -> LinkedItem:
    return LinkedItem(
        id=candidate.id,
        label=candidate.label,
        name=candidate.name,
        score=round(candidate.score, 6),
        match=candidate.match,
        span=candidate.span,
    )
