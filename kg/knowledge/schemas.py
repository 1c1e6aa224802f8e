"""Typed results of the knowledge API, shared by the in-process client, the HTTP server and the HTTP client.

They are pydantic models: the server returns them as JSON (and documents them in its OpenAPI schema), the remote
client parses that JSON back into the same types, so both backends of :class:`kg.KnowledgeClient` return equal
objects. A name the graph does not know is an answer (``found=False`` with a ``message`` and suggestions), not an
exception.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Answer",
    "ChatMessage",
    "EntityMatch",
    "EntityRef",
    "EntitySearch",
    "Fact",
    "FactsResult",
    "GuideResult",
    "LinkedItem",
    "Neighbour",
    "Prediction",
    "Predictions",
    "RelationRef",
    "SimilarResult",
    "VersionInfo",
]


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EntityRef(_Result):
    """An entity: vocabulary ``id``, KG ``label`` (e.g. ``/m/016ywr``) and readable ``name``."""

    id: int
    label: str
    name: str


class RelationRef(_Result):
    """A relation: vocabulary ``id``, ``label``, readable ``name`` (the phrase facts are written with), and
    ``inverse`` when it is read from tail to head."""

    id: int
    label: str
    name: str
    inverse: bool = False


class EntityMatch(EntityRef):
    """A search hit: ``score`` in ``[0, 1]`` and how it matched (``exact``, ``alias``, ``label`` or ``text``)."""

    score: float
    match: str


class EntitySearch(_Result):
    """Entities matching a name, best first; ``found`` is false (with a ``message``) when none does."""

    query: str
    found: bool
    matches: list[EntityMatch] = Field(default_factory=list)
    message: str | None = None
    version: str


class Fact(_Result):
    """A fact, stated by the graph (``kind="known"``, arrived in ``snapshot``) or inferred by the embeddings
    (``kind="inferred"``, with a calibrated ``confidence``). ``score`` is the relevance to the question for known
    facts and the confidence for inferred ones; ``citation`` is its number in a guide's context (0 outside one);
    ``hop`` is 1 for facts about a linked entity, 2 for facts about its neighbours; ``via`` (two-hop facts in a
    guide's context) is the citation of the fact that joins it to the linked entity, so the two are cited as one
    path; ``because`` (inferred facts in a guide's context) are the citations of the known facts of the best path
    supporting it (:func:`evergraph.kg.knowledge.explain.cite_reasons`); ``text`` is the sentence."""

    head: EntityRef
    relation: RelationRef
    tail: EntityRef
    kind: Literal["known", "inferred"]
    score: float
    confidence: float | None = None
    snapshot: int | None = None
    hop: int | None = None
    citation: int = 0
    via: int | None = None
    because: list[int] = Field(default_factory=list)
    text: str


class FactsResult(_Result):
    """Known facts about an entity (at most ``limit`` of ``total``)."""

    query: str
    found: bool
    entity: EntityRef | None = None
    facts: list[Fact] = Field(default_factory=list)
    total: int = 0
    message: str | None = None
    suggestions: list[EntityMatch] = Field(default_factory=list)
    version: str


class Prediction(_Result):
    """One predicted answer: the ``fact`` it would make and its calibrated confidence."""

    answer: EntityRef
    score: float
    confidence: float
    fact: Fact


class Predictions(_Result):
    """New answers of ``(head, relation, ?)`` by link prediction, best first (known answers excluded)."""

    query: str
    found: bool
    head: EntityRef | None = None
    relation: RelationRef | None = None
    predictions: list[Prediction] = Field(default_factory=list)
    known: list[EntityRef] = Field(default_factory=list)
    message: str | None = None
    version: str


class Neighbour(_Result):
    """An entity near another in embedding space: ``distance`` (L2 between entity vectors)."""

    entity: EntityRef
    distance: float


class SimilarResult(_Result):
    """The entities nearest to ``entity`` in embedding space."""

    query: str
    found: bool
    entity: EntityRef | None = None
    neighbours: list[Neighbour] = Field(default_factory=list)
    message: str | None = None
    version: str


class LinkedItem(_Result):
    """An entity or relation linked from the question: ``score`` in ``[0, 1]``, ``match`` (exact/alias/text),
    ``span`` of the question it covers (``None``: the whole question)."""

    id: int
    label: str
    name: str
    score: float
    match: str
    span: tuple[int, int] | None = None


class ChatMessage(_Result):
    """One message of a chat-completions request."""

    role: Literal["system", "user", "assistant"]
    content: str


class GuideResult(_Result):
    """What the guide made of a question: linked entities and relations, the facts chosen (numbered as cited
    in ``context``), the ``context``, and the ``prompt`` it would send to an LLM. ``abstained`` (with ``reason``
    and ``message``) when no entity links or no fact passes the bars: then there is no prompt to send.
    ``answer_kind``: the kind of answer the question asks for (``person``, ``place``, ``date``), when it says."""

    question: str
    version: str
    snapshot: int
    abstained: bool
    reason: str | None = None
    message: str | None = None
    entities: list[LinkedItem] = Field(default_factory=list)
    relations: list[LinkedItem] = Field(default_factory=list)
    answer_kind: str | None = None
    facts: list[Fact] = Field(default_factory=list)
    context: str = ""
    context_tokens: int = 0
    dropped_facts: int = 0
    prompt: list[ChatMessage] = Field(default_factory=list)


class Answer(_Result):
    """An LLM's answer from the guide's context: ``citations`` are the fact numbers it cited (those in the
    context), ``facts`` those facts. ``abstained``: no LLM was called, ``answer`` is the abstention message."""

    question: str
    answer: str
    abstained: bool
    citations: list[int] = Field(default_factory=list)
    facts: list[Fact] = Field(default_factory=list)
    version: str
    snapshot: int
    llm_model: str | None = None
    guide: GuideResult


class VersionInfo(_Result):
    """The served model version and what it holds."""

    version: str
    snapshot: int
    interaction: str
    num_entities: int
    num_relations: int
    num_facts: int
    created: str | None = None
    calibration_ece: float | None = None
    bundle: str
