"""The kind of answer a question asks for, and the kind of each entity, as a ranking signal for the guide.

**Answer kinds** are coarse: ``person``, ``place`` and ``date``. :func:`expected_kind` reads them from the
question's words: "who"/"whom"/"whose" ask for a person; "where", and "what/which/in what" followed by a place noun
("country", "city", "state", ...), for a place; "when", and "what/which" followed by "year"/"date"/"decade", for a
date. Anything else asks for no particular kind (``None``).

**Entity kinds** come from the graph itself, without type labels: an entity is a ``person`` when it is the head of
a relation whose Freebase path names a person type (``/people/person/...``, ``/film/actor/...``, ...), a ``place``
when it heads a relation of a place type (``/location/...``, ...) or is contained in something
(``/location/location/contains``), a ``date`` when its name holds a year or a month ("2008 Summer Olympics",
"January"). Graphs whose relations are not Freebase paths give no kinds: then the signal is silent.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from evergraph.kg.knowledge.text import word_spans

if TYPE_CHECKING:
    from evergraph.kg.store.bundle import Bundle

__all__ = ["KINDS", "AnswerKind", "EntityKinds", "expected_kind"]

AnswerKind = Literal["person", "place", "date"]
KINDS: tuple[AnswerKind, ...] = ("person", "place", "date")

_PERSON_TYPES = frozenset(
    """people/person people/deceased_person film/actor film/director music/group_member sports/pro_athlete
    soccer/football_player government/politician celebrities/celebrity popstra/celebrity tv/tv_personality
    saturdaynightlive/snl_cast_member americancomedy/celebrity_impressionist schemastaging/person_extra
    film/film_set_designer tv/tv_writer""".split()
)
_PLACE_DOMAINS = frozenset({"location", "biblioness", "aareas", "locations", "petbreeds"})
_PLACE_TYPES = frozenset({"travel/travel_destination", "sports/sports_team_location"})
_CONTAINS = "/location/location/contains"

_PLACE_NOUNS = frozenset(
    """country countries city cities state states town towns place places county counties continent region
    province nation island location area village capital""".split()
)
_DATE_NOUNS = frozenset({"year", "years", "date", "decade", "century", "month", "day"})
_ASKING = frozenset({"what", "which", "whats"})
_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})\b")
_MONTHS = frozenset("january february march april may june july august september october november december".split())


def expected_kind(question: str) -> AnswerKind | None:
    """The kind of answer ``question`` asks for (module docstring), or ``None``."""
    words = [w for w, _, _ in word_spans(question)]
    for i, word in enumerate(words):
        if word in ("who", "whom", "whose"):
            return "person"
        if word == "where":
            return "place"
        if word == "when":
            return "date"
        if word in _ASKING and i + 1 < len(words):
            following = words[i + 1 : i + 2]
            if following[0] in _PLACE_NOUNS:
                return "place"
            if following[0] in _DATE_NOUNS:
                return "date"
    return None


def _path_type(label: str) -> tuple[str, str] | None:
    """``(domain, type)`` of a Freebase path's subject: ``/people/person/place_of_birth`` -> ``(people, person)``;
    the last two segments before the property for longer ones (``/base/popstra/celebrity/dated`` -> ``(popstra,
    celebrity)``)."""
    if not label.startswith("/"):
        return None
    segments = [s for s in label.split(".")[0].split("/") if s]
    if len(segments) < 3:
        return None
    return segments[-3], segments[-2]


class EntityKinds:
    """``kinds[e]`` is a bit set of the :data:`KINDS` entity ``e`` belongs to (module docstring), computed once
    per bundle: ``[num_entities]`` int8 (numpy)."""

    def __init__(self, bundle: Bundle) -> None:
        facts = bundle.facts.facts
        num_entities = len(bundle.entities)
        heads_of = {"person": set(), "place": set()}
        contains = None
        for r, label in enumerate(bundle.relations.labels):
            found = _path_type(label)
            if label == _CONTAINS:
                contains = r
            if found is None:
                continue
            domain, kind = found
            if f"{domain}/{kind}" in _PERSON_TYPES:
                heads_of["person"].add(r)
            elif domain in _PLACE_DOMAINS or f"{domain}/{kind}" in _PLACE_TYPES:
                heads_of["place"].add(r)
        kinds = torch.zeros(num_entities, dtype=torch.int8)
        if len(facts):
            for bit, kind in enumerate(("person", "place")):
                relations = torch.tensor(sorted(heads_of[kind]), dtype=torch.long)
                if len(relations):
                    heads = facts[torch.isin(facts[:, 1], relations), 0]
                    kinds[heads] |= 1 << bit
            if contains is not None:
                kinds[facts[facts[:, 1] == contains, 2]] |= 2
        names = bundle.entity_names
        for e, label in enumerate(bundle.entities.labels):
            name = names.get(label, "")
            if name and (_YEAR.search(name) or name.strip().lower() in _MONTHS):
                kinds[e] |= 4
        self.kinds = kinds.numpy()
        self.known = bool((kinds != 0).any())

    def matches(self, entities: np.ndarray | torch.Tensor, kind: AnswerKind) -> np.ndarray:
        """Bool per entity of ``entities``: whether it is of ``kind``."""
        bit = 1 << KINDS.index(kind)
        return (self.kinds[np.asarray(entities)] & bit) != 0

    def described(self, entities: np.ndarray | torch.Tensor) -> np.ndarray:
        """Bool per entity: whether any kind is known for it."""
        return self.kinds[np.asarray(entities)] != 0
