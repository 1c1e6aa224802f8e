"""Parametric knowledge guiding: turn a question into the cited knowledge a black-box LLM needs.

:meth:`Guide.guide` works in four steps on one serving bundle (:class:`kg.Bundle`):

1. **Linking** (:class:`evergraph.kg.knowledge.linking.Linker`): an entity candidate's score is its linking score times
   how well it agrees with its place in the question: the share of its mention it covers (a name matching part of a
   longer capitalised run, "Hawaii" in "What is the webpage of Hawaii County?", covers 6/13 of it: the question
   is probably about something else), for text matches the edit similarity of mention and name instead of the
   cosine that found it (a typo keeps ~0.9), and a halving for a proper name matched by lower-case words ("the
   artist" is not the film "The Artist"); candidates scoring at
   least ``min_entity_score`` (at most ``max_entities``) anchor the question. Every relation gets a score for
   the question: the best of its linking score and the cosine between its text and the question's remaining
   words (without the linked entity names and stopwords); relations scoring at least ``min_relation_score`` and
   within ``relation_margin`` of the best (at most ``max_relations``) are *asked for*.
2. **Known facts** (the bundle's training facts): each fact of an anchor ``a`` (linking score ``s_a``) with
   relation ``r`` gets the relevance ``s_a * (0.4 + 0.6 * score(r))``: a fact of the asked relation scores up
   to 1, any other fact of the entity 0.4 (the question is about the entity, the relation is unknown). A fact
   joining two anchors scores at least the lower of their linking scores. With ``hops=2`` the facts of the
   ``max_neighbours`` most relevant neighbours are added at ``0.5 * relevance(joining fact) * (0.4 + 0.6 *
   score(r))``. Facts below ``min_relevance`` are dropped; the best ``max_known`` are kept.
3. **Inferred facts**: each (anchor, asked relation) pair is asked in both directions through the bundle's FAISS
   index (:func:`evergraph.kg.knowledge.inference.infer`: known answers excluded, so a known fact is never repeated);
   answers with a calibrated confidence of at least ``min_confidence`` are kept, the best ``max_inferred`` by
   ``s_a * score(r) * confidence``. An answer whose type does not fit the relation's domain and range as the
   known facts show them is never offered (``infer(..., typed=True)``, :mod:`evergraph.kg.knowledge.types`).
4. **Context**: each fact becomes a sentence from the name files ("Jeremy Irons — place of birth: Cowes."),
   numbered for citation (``[1]``), marked known (with its snapshot) or inferred (with its confidence), under a
   header naming the model version and snapshot. Facts are added by priority while the context stays within
   ``max_context_tokens`` (estimated as one token per 4 characters, rounded up); the rest are counted in
   ``dropped_facts``. Known facts are listed first.

**Abstention**: when no entity links above ``min_entity_score``, or no fact passes the bars, the result has
``abstained=True``, a ``reason`` and the configurable ``abstain_message``, and no prompt: nothing is sent to an
LLM, so it cannot guess.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import TYPE_CHECKING, Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from evergraph.kg.knowledge.inference import infer
from evergraph.kg.knowledge.linking import STOPWORDS, LinkCandidate, Linker, case_informative, relation_text
from evergraph.kg.knowledge.schemas import ChatMessage, EntityRef, Fact, GuideResult, LinkedItem, RelationRef
from evergraph.kg.knowledge.text import normalize_text, word_spans

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

_HOP_DECAY = 0.5
_BASE_RELEVANCE = 0.4
_REPEAT_DECAY = 0.8


class GuideConfig(BaseModel):
    """How the guide links, retrieves and composes (module docstring); every field has a default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hops: int = Field(1, ge=1, le=2, description="1: facts of the linked entities; 2: also of their neighbours")
    min_entity_score: float = Field(0.7, ge=0, le=1, description="linking score an anchor entity needs")
    max_entities: int = Field(3, ge=1, le=20)
    min_relation_score: float = Field(0.5, ge=0, le=1, description="score a relation needs to be asked for")
    relation_margin: float = Field(0.25, ge=0, le=1, description="asked relations score within this of the best")
    max_relations: int = Field(3, ge=0, le=20)
    max_known: int = Field(8, ge=0, le=100)
    max_inferred: int = Field(4, ge=0, le=100)
    predictions_per_query: int = Field(5, ge=1, le=100)
    max_neighbours: int = Field(20, ge=0, le=1000, description="neighbours expanded when hops=2")
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
    last segment of a Freebase path (``/people/person/place_of_birth`` -> ``place of birth``), else the label's
    words (``born_in`` -> ``born in``)."""
    if name and normalize_text(name) != normalize_text(relation_text(label)):
        return name.strip()
    if label.startswith("/"):
        segments = [s for s in label.split(".")[0].split("/") if s]
        if segments:
            return relation_text(segments[-1])
    return relation_text(label)


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
        """Link, retrieve and compose the cited context for ``question`` (module docstring)."""
        cfg = self.config
        bundle = self.bundle
        # a few more candidates than anchors: some may lose their place when checked against the question
        link = self.linker.link(question, k_entities=cfg.max_entities + 3, k_relations=max(cfg.max_relations, 1))
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
        relation_scores = self._relation_scores(question, link.relations, anchors)
        order = torch.argsort(relation_scores, descending=True, stable=True)[: cfg.max_relations].tolist()
        bar = max(
            cfg.min_relation_score,
            (float(relation_scores.max()) if len(relation_scores) else 0.0) - cfg.relation_margin,
        )
        asked = [r for r in order if float(relation_scores[r]) >= bar]
        known = self._known(anchors, relation_scores)
        inferred = self._inferred(anchors, asked, relation_scores)
        relations = [
            LinkedItem(
                id=r,
                label=bundle.relations.label(r),
                name=self._phrases[r],
                score=round(float(relation_scores[r]), 6),
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
        facts, context, tokens, dropped = self._compose(known, inferred)
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

    def _relation_scores(
        self, question: str, linked: list[LinkCandidate], anchors: list[LinkCandidate]
    ) -> torch.Tensor:
        """``[num_relations]`` scores in ``[0, 1]``: linking score, or cosine with the question's other words."""
        scores = torch.zeros(self.linker.num_relations)
        for candidate in linked:
            scores[candidate.id] = max(float(scores[candidate.id]), candidate.score)
        spans = [c.span for c in anchors if c.span is not None]
        words = [
            question[b:e]
            for word, b, e in word_spans(question)
            if word not in STOPWORDS and not any(s <= b and e <= t for s, t in spans)
        ]
        if words and self.linker.num_relations:
            similar = torch.from_numpy(self.linker.similarities(" ".join(words), kind="relation"))
            scores = torch.maximum(scores, similar)
        return scores

    def _known(self, anchors: list[LinkCandidate], relation_scores: torch.Tensor) -> list[Fact]:
        cfg = self.config
        facts = self.bundle.facts
        linked = {c.id: c.score for c in anchors}
        weight = _BASE_RELEVANCE + (1 - _BASE_RELEVANCE) * relation_scores
        parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]] = []  # rows, relations, relevance, hop

        for anchor in anchors:
            rows, relations, others = facts.about_arrays(anchor.id)
            relevance = anchor.score * weight[relations // 2]
            for other, score in linked.items():
                if other != anchor.id:
                    joins = others == other
                    relevance[joins] = relevance[joins].clamp_min(min(anchor.score, score))
            parts.append((rows, relations, relevance, 1))
            if cfg.hops == 2 and len(rows) and cfg.max_neighbours:
                top = relevance.topk(min(len(relevance), cfg.max_neighbours * 4))
                seen: set[int] = set()
                for value, index in zip(top.values.tolist(), top.indices.tolist(), strict=True):
                    neighbour = int(others[index])
                    if neighbour in seen or neighbour in linked:
                        continue
                    seen.add(neighbour)
                    rows2, relations2, others2 = facts.about_arrays(neighbour)
                    ahead = others2 != anchor.id
                    relevance2 = _HOP_DECAY * value * weight[relations2 // 2]
                    parts.append((rows2[ahead], relations2[ahead], relevance2[ahead], 2))
                    if len(seen) >= cfg.max_neighbours:
                        break
        rows = torch.cat([p[0] for p in parts])
        relations = torch.cat([p[1] for p in parts]) // 2
        relevance = torch.cat([p[2] for p in parts])
        hops = torch.cat([torch.full((len(p[0]),), p[3]) for p in parts])
        keep = relevance >= cfg.min_relevance
        rows, relations, relevance, hops = rows[keep], relations[keep], relevance[keep], hops[keep]
        if not len(rows):
            return []
        # one entry per fact (a fact reached twice keeps its best relevance)
        order = torch.argsort(relevance, descending=True, stable=True)
        rows, relations, relevance, hops = rows[order], relations[order], relevance[order], hops[order]
        unique, inverse = torch.unique(rows, return_inverse=True)
        first = torch.full((len(unique),), len(rows)).scatter_reduce(0, inverse, torch.arange(len(rows)), "amin")
        first = first.sort().values
        rows, relations, relevance, hops = rows[first], relations[first], relevance[first], hops[first]
        # greedy choice with a little diversity: each fact already chosen with the same relation lowers the
        # priority of the next one by _REPEAT_DECAY, so a hub's 500 facts of one relation do not fill the context
        chosen: list[int] = []
        repeats = torch.zeros(self.bundle.model.num_relations)
        available = torch.ones(len(rows), dtype=torch.bool)
        for _ in range(min(cfg.max_known, len(rows))):
            priority = relevance * _REPEAT_DECAY ** repeats[relations]
            priority[~available] = -1.0
            pick = int(priority.argmax())
            chosen.append(pick)
            available[pick] = False
            repeats[relations[pick]] += 1
        chosen.sort(key=lambda i: (-float(relevance[i]), i))
        result = []
        for i in chosen:
            h, r, t, snapshot = facts.facts[int(rows[i])].tolist()
            result.append(
                self.fact(h, r, t, kind="known", score=float(relevance[i]), snapshot=snapshot, hop=int(hops[i]))
            )
        return result

    def _inferred(self, anchors: list[LinkCandidate], asked: list[int], relation_scores: torch.Tensor) -> list[Fact]:
        cfg = self.config
        if not asked or not cfg.max_inferred:
            return []
        queries = [(a, 2 * r + d) for a in anchors for r in asked for d in (0, 1)]
        answers = infer(
            self.bundle,
            [a.id for a, _ in queries],
            [r for _, r in queries],
            k=cfg.predictions_per_query,
            typed=True,  # never offer an answer whose type the relation has never taken (issue 10)
        )
        best: dict[tuple[int, int, int], tuple[float, float]] = {}  # triple -> (priority, confidence)
        for (anchor, relation), found in zip(queries, answers, strict=True):
            for item in found:
                if item.confidence < cfg.min_confidence:
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

    def _compose(self, known: list[Fact], inferred: list[Fact]) -> tuple[list[Fact], str, int, int]:
        """Choose facts by priority within the token budget, number them (known first), write the context."""
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
            cost = estimate_tokens(_line(99, fact)) + 1
            if cost <= budget:
                chosen.add((kind, i))
                budget -= cost
        ordered = [fact for i, fact in enumerate(known) if (0, i) in chosen]
        ordered += [fact for i, fact in enumerate(inferred) if (1, i) in chosen]
        numbered = [fact.model_copy(update={"citation": n}) for n, fact in enumerate(ordered, start=1)]
        context = "\n".join([header, *(_line(fact.citation, fact) for fact in numbered)])
        return numbered, context, estimate_tokens(context), len(known) + len(inferred) - len(numbered)


def _agreement(question: str, candidate: LinkCandidate, mentions: list[tuple[int, int]], *, cased: bool) -> float:
    """The score a linked name keeps as an anchor, in ``[0, 1]``: its linking score times the share of its mention
    it covers (:func:`_coverage`), and times 0.5 for a multi-word proper name ("The Artist") matched exactly by
    lower-case words in a question whose case is informative ("what is the artist of ..."). A text match is
    verified against the words it was found from: its score is the edit similarity of the two
    (:func:`edit_similarity`; a typo keeps about 0.9, "Knight" for "T. R. Knight" 0.5), not the cosine that
    retrieved it."""
    coverage = _coverage(candidate.span, mentions)
    score = candidate.score * coverage
    if candidate.span is not None:
        text = question[candidate.span[0] : candidate.span[1]]
        if candidate.match == "text" and candidate.matched:
            return coverage * edit_similarity(text, candidate.matched)
        if cased and not any(ch.isupper() for ch in text):
            if sum(word[:1].isupper() for word in candidate.matched.split()) >= 2:
                score *= 0.5
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
