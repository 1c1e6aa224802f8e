"""Typed results of ``explain`` (the evidence for a fact), shared by the in-process client, the HTTP server and the
HTTP client like :mod:`evergraph.kg.knowledge.schemas` (pydantic only: importing it stays light)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from evergraph.kg.knowledge.schemas import EntityMatch, EntityRef, Fact, RelationRef

__all__ = ["Analogy", "ExplainResult", "RuleRef", "SupportingPath"]


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RuleRef(_Result):
    """A mined rule ``body => relation``: ``text`` reads it, ``body`` are its steps (``inverse`` steps are read
    from tail to head); ``confidence`` (standard confidence), ``support`` (facts of the relation it connects,
    estimated) and ``head_coverage`` (their share)."""

    text: str
    body: list[RelationRef]
    confidence: float
    support: float
    head_coverage: float


class SupportingPath(_Result):
    """Known facts that walk from the head to the tail along ``rule``'s body, in order."""

    rule: RuleRef
    facts: list[Fact]


class Analogy(_Result):
    """A known fact of the same relation whose entities are embedding neighbours of the explained fact's
    (``similarity``: mean cosine of the two pairs of entity vectors, 1 for a shared entity)."""

    fact: Fact
    similarity: float


class ExplainResult(_Result):
    """The evidence for ``(head, relation, tail)``: supporting paths ranked by the confidence of their rule, and
    analogies. ``known`` says whether the fact itself is stated in the graph; ``confidence`` is the best supporting
    rule's (0 without a path)."""

    query: str
    found: bool
    head: EntityRef | None = None
    relation: RelationRef | None = None
    tail: EntityRef | None = None
    known: bool = False
    confidence: float = 0.0
    paths: list[SupportingPath] = Field(default_factory=list)
    analogies: list[Analogy] = Field(default_factory=list)
    message: str | None = None
    suggestions: list[EntityMatch] = Field(default_factory=list)
    version: str
