"""A small, readable, *growing* knowledge graph to try Evergraph on without downloading anything.

:func:`write_example_dataset` writes the usual dataset layout::

    out/0/train.txt  out/0/valid.txt  out/0/test.txt
    out/1/...
    out/entity_names.tsv    (id<TAB>readable name)
    out/relation_names.tsv  (id<TAB>readable name)

Each ``<n>/{train,valid,test}.txt`` holds only the facts that are new in snapshot ``n`` (``head<TAB>relation<TAB>
tail``, no fact twice anywhere). The world is a handful of countries, each with its own cities, companies, people
and films; most relations stay inside a country, so an embedding model has real structure to learn:

- ``located_in`` (city -> country) and ``capital_of`` are functional; ``borders`` is symmetric;
- ``citizen_of`` is mostly ``born_in`` composed with ``located_in``;
- ``lives_in`` is often the city where the employer (``works_for``) is ``headquartered_in``;
- ``friend_of``, ``colleague_of`` and ``spouse_of`` are symmetric and mostly within a company, city or country;
- films are ``produced_in`` a country, ``produced_by`` one of its studios, cast (``acted_in``) and ``directed``
  mostly by people of that country.

The graph grows: every snapshot brings new people, companies and films (some new cities and countries too),
linked to the existing ones, plus new facts about old entities; and some relations only appear later
(``colleague_of``, ``spouse_of``, ``directed``, ``founded``, ``parent_of``, ...). Facts whose relation has not
appeared yet wait and show up, as new facts about old entities, in the snapshot that introduces the relation.

Everything is deterministic given ``seed``: the same arguments always write the same bytes.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from evergraph.kg.engine.config import ModelConfig, RunConfig, TrainConfig
from evergraph.kg.errors import ExampleTargetError

logger = logging.getLogger(__name__)

__all__ = [
    "EXAMPLE_DIM",
    "EXAMPLE_RELATIONS",
    "EXAMPLE_THREADS",
    "EXAMPLE_TRAIN",
    "ExampleTargetError",
    "example_config",
    "write_example_dataset",
]

EXAMPLE_DIM = 64
"""Embedding dimension for the example graph (590 entities). The engine's default, 200, is sized for graphs of
thousands of entities; on this one 64, 128 and 200 reach the same stream MRR (bench/RESULTS.md, "Demo-sized
settings"), and 64 keeps the bundle and the index small."""
EXAMPLE_TRAIN: dict[str, int] = {"eval_every": 2, "patience": 3, "max_epochs": 100}
"""Training settings for the example graph, over the engine's defaults: validation every 2 epochs instead of 5,
so early stopping ends each small snapshot (about 1,200 training triples) soon after it stops improving, and at
most 100 epochs (same sweep: a higher final stream MRR than the engine's defaults in a quarter of the CPU time)."""

EXAMPLE_THREADS = 1
"""torch threads for the example graph: its tensors are so small that a second thread only adds synchronisation
(with 2 threads on a shared 2-core machine the same run took 13x as long; bench/RESULTS.md)."""


def example_config(*, strategy: str = "lkge", model: str = "transe", **train: object) -> RunConfig:
    """The demo-sized :class:`~evergraph.kg.engine.config.RunConfig` for the example graph (``EXAMPLE_DIM``,
    ``EXAMPLE_TRAIN``; keyword arguments override training settings, e.g. ``seed=1``). ``evergraph run`` uses
    it when no ``--data`` is given; the engine's own defaults stay sized for real graphs."""
    return RunConfig(
        strategy=strategy,
        model=ModelConfig(name=model, dim=EXAMPLE_DIM),
        train=TrainConfig.model_validate({**EXAMPLE_TRAIN, **train}),
    )


#: Relation id -> readable name, for every relation the example dataset can contain.
EXAMPLE_RELATIONS: dict[str, str] = {
    "located_in": "located in",
    "capital_of": "capital of",
    "borders": "borders",
    "headquartered_in": "headquartered in",
    "born_in": "born in",
    "citizen_of": "citizen of",
    "lives_in": "lives in",
    "works_for": "works for",
    "friend_of": "friend of",
    "produced_in": "produced in",
    "acted_in": "acted in",
    "colleague_of": "colleague of",
    "produced_by": "produced by",
    "spouse_of": "spouse of",
    "operates_in": "operates in",
    "directed": "directed",
    "founded": "founded",
    "parent_of": "parent of",
    "filmed_in": "filmed in",
}

# Snapshot in which each relation first appears (capped at the last snapshot when there are fewer).
_RELATION_INTRO: dict[str, int] = {
    "located_in": 0,
    "capital_of": 0,
    "borders": 0,
    "headquartered_in": 0,
    "born_in": 0,
    "citizen_of": 0,
    "lives_in": 0,
    "works_for": 0,
    "friend_of": 0,
    "produced_in": 0,
    "acted_in": 0,
    "colleague_of": 1,
    "produced_by": 1,
    "spouse_of": 2,
    "operates_in": 2,
    "directed": 3,
    "founded": 3,
    "parent_of": 4,
    "filmed_in": 4,
}

_SPLITS = ("train", "valid", "test")
_MARKER = ".evergraph-example"
_NAME_FILES = ("entity_names.tsv", "relation_names.tsv")

# Countries in order of arrival, with their cities (capital first).
_COUNTRIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("France", ("Paris", "Lyon", "Marseille", "Toulouse", "Nice", "Nantes", "Bordeaux", "Lille", "Strasbourg")),
    ("Germany", ("Berlin", "Munich", "Hamburg", "Cologne", "Frankfurt", "Stuttgart", "Leipzig", "Dresden")),
    ("Italy", ("Rome", "Milan", "Naples", "Turin", "Florence", "Bologna", "Venice", "Genoa")),
    ("Spain", ("Madrid", "Barcelona", "Valencia", "Seville", "Bilbao", "Malaga", "Zaragoza", "Granada")),
    ("Japan", ("Tokyo", "Osaka", "Kyoto", "Nagoya", "Sapporo", "Fukuoka", "Kobe", "Yokohama")),
    ("Brazil", ("Brasilia", "Sao Paulo", "Rio de Janeiro", "Salvador", "Recife", "Curitiba", "Fortaleza")),
    ("Portugal", ("Lisbon", "Porto", "Braga", "Coimbra", "Faro", "Aveiro")),
    ("Argentina", ("Buenos Aires", "Cordoba", "Rosario", "Mendoza", "La Plata", "Salta")),
    ("Netherlands", ("Amsterdam", "Rotterdam", "Utrecht", "Eindhoven", "The Hague", "Groningen")),
    ("Canada", ("Ottawa", "Toronto", "Montreal", "Vancouver", "Calgary", "Halifax")),
)

_BORDERS: tuple[tuple[str, str], ...] = (
    ("France", "Germany"),
    ("France", "Italy"),
    ("France", "Spain"),
    ("Spain", "Portugal"),
    ("Germany", "Netherlands"),
    ("Brazil", "Argentina"),
)

_FIRST_NAMES = (
    "Ada, Alan, Amira, Anna, Bruno, Carla, Chen, Clara, Daniel, Elena, Emil, Eva, Felix, Grace, "
    "Hana, Hugo, Ines, Ivan, Jonas, Julia, Kenji, Lara, Leo, Lina, Lucas, Maya, Marco, Marie, "
    "Mateo, Nadia, Nina, Noah, Omar, Paula, Pedro, Rosa, Ruben, Sara, Sofia, Tomas, Uma, Victor, "
    "Yara, Yuki, Zoe, Oscar, Iris, Milan"
).split(", ")
_LAST_NAMES = (
    "Lovelace, Turing, Curie, Hopper, Noether, Euler, Gauss, Riemann, Fermat, Pascal, Kepler, "
    "Galvani, Volta, Ampere, Faraday, Maxwell, Planck, Bohr, Meitner, Fermi, Dirac, Pauli, Hilbert, "
    "Cantor, Laplace, Fourier, Cauchy, Galois, Abel, Jacobi, Bernoulli, Leibniz, Newton, Hooke, "
    "Boyle, Dalton, Mendel, Darwin, Lamarck, Linnaeus, Tesla, Edison, Morse, Bell, Diesel, Otto, "
    "Benz, Porsche"
).split(", ")
_COMPANY_PREFIXES = (
    "Acme, Nova, Blue Harbor, Northwind, Silverline, Redwood, Orbit, Granite, Bright Path, Lumen, "
    "Cobalt, Evergreen, Summit, Atlas, Pioneer, Kestrel, Meridian, Quartz, Harbor Light, "
    "Ironbridge, Sunrise, Velvet, Polar, Tidewater, Crescent, Falcon, Maple, Zenith"
).split(", ")
_COMPANY_KINDS = (
    "Robotics, Foods, Energy, Logistics, Software, Motors, Pharma, Bank, Textiles, Airlines, Pictures, Studios, Media"
).split(", ")
_MEDIA_KINDS = ("Pictures", "Studios", "Media")
_FILM_ADJECTIVES = (
    "Silent, Golden, Last, Hidden, Broken, Distant, Crimson, Frozen, Quiet, Burning, Endless, "
    "Forgotten, Secret, Wild, Lonely, Bright, Dark, Northern, Little, Wandering, Electric, Paper, "
    "Glass, Midnight"
).split(", ")
_FILM_NOUNS = (
    "River, Garden, Station, Summer, Harbor, Mountain, Letter, Orchard, Bridge, Island, Lantern, "
    "Kingdom, Voyage, Window, Forest, Engine, Promise, Tide, Compass, Meadow, Signal, Archive, "
    "Horizon, Piano"
).split(", ")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _rounded(base: float, scale: float, *, minimum: int = 1) -> int:
    return max(minimum, int(base * scale + 0.5))


@dataclass
class _Country:
    id: str
    cities: list[str] = field(default_factory=list)
    spare_cities: list[str] = field(default_factory=list)  # names not used yet, in order
    neighbours: list[str] = field(default_factory=list)
    arrived: int = 0


@dataclass
class _Company:
    id: str
    country: str
    city: str
    media: bool
    employees: list[str] = field(default_factory=list)
    founder: str | None = None


@dataclass
class _Person:
    id: str
    index: int
    country: str
    city: str
    company: str | None
    spouse: str | None = None


class _World:
    """The latent world and the facts it implies, generated snapshot by snapshot."""

    def __init__(self, *, seed: int, num_snapshots: int, scale: float) -> None:
        self.rng = random.Random(seed)
        self.scale = scale
        self.last = num_snapshots - 1
        self.intro = {rel: min(at, self.last) for rel, at in _RELATION_INTRO.items()}
        self.names: dict[str, str] = {}  # entity id -> readable name, in creation order
        self.countries: dict[str, _Country] = {}
        self.city_country: dict[str, str] = {}
        self.companies: dict[str, _Company] = {}
        self.people: dict[str, _Person] = {}
        self.films: dict[str, str] = {}  # film id -> country id
        self.country_pool = list(_COUNTRIES)
        self.used_person_names: set[str] = set()
        self.used_company_names: set[str] = set()
        self.used_film_names: set[str] = set()
        self.queued: set[tuple[str, str, str]] = set()
        self.pending: list[tuple[str, str, str]] = []  # decided facts, in decision order
        self.snapshot = 0

    # -- helpers ---------------------------------------------------------------------------------------------

    def _entity(self, kind: str, name: str) -> str:
        base = f"{kind}/{_slug(name)}"
        eid, k = base, 1
        while eid in self.names:
            k += 1
            eid = f"{base}_{k}"
        self.names[eid] = name if k == 1 else f"{name} ({k})"
        return eid

    def fact(self, head: str, rel: str, tail: str) -> None:
        """Decide a fact; it is emitted in the first snapshot (from now on) where ``rel`` exists."""
        triple = (head, rel, tail)
        if head != tail and triple not in self.queued:
            self.queued.add(triple)
            self.pending.append(triple)

    def symmetric(self, a: str, rel: str, b: str) -> None:
        self.fact(a, rel, b)
        self.fact(b, rel, a)

    def emit(self) -> list[tuple[str, str, str]]:
        """The decided facts whose relation exists in the current snapshot; the others keep waiting."""
        ready = [f for f in self.pending if self.intro[f[1]] <= self.snapshot]
        self.pending = [f for f in self.pending if self.intro[f[1]] > self.snapshot]
        return ready

    def _unique_name(self, used: set[str], parts: Sequence[Sequence[str]], joiner: str = " ") -> str:
        for _ in range(64):
            name = joiner.join(self.rng.choice(p) for p in parts)
            if name not in used:
                break
        used.add(name)  # falls back to a repeated name; _entity still makes the id unique
        return name

    def _pick_country(self, *, fresh_bonus: int = 4) -> str:
        ids = list(self.countries)
        weights = [
            len(c.cities) + (fresh_bonus if c.arrived == self.snapshot and self.snapshot else 0)
            for c in self.countries.values()
        ]
        return self.rng.choices(ids, weights=weights)[0]

    def _other_country(self, country: str) -> str:
        others = [c for c in self.countries if c != country]
        return self.rng.choice(others) if others else country

    def _people_in(self, country: str) -> list[str]:
        return [p.id for p in self.people.values() if p.country == country]

    # -- growth ----------------------------------------------------------------------------------------------

    def add_country(self) -> str | None:
        if not self.country_pool:
            return None
        name, cities = self.country_pool.pop(0)
        cid = self._entity("country", name)
        self.countries[cid] = _Country(id=cid, spare_cities=list(cities), arrived=self.snapshot)
        capital = self.add_city(cid)
        if capital is not None:
            self.fact(capital, "capital_of", cid)
        for a, b in _BORDERS:
            if name in (a, b):
                other = f"country/{_slug(b if name == a else a)}"
                if other in self.countries:
                    self.symmetric(cid, "borders", other)
                    self.countries[cid].neighbours.append(other)
                    self.countries[other].neighbours.append(cid)
        return cid

    def add_city(self, country: str) -> str | None:
        c = self.countries[country]
        if not c.spare_cities:
            return None
        city = self._entity("city", c.spare_cities.pop(0))
        c.cities.append(city)
        self.city_country[city] = country
        self.fact(city, "located_in", country)
        return city

    def add_company(self) -> str:
        country = self._pick_country()
        name = self._unique_name(self.used_company_names, (_COMPANY_PREFIXES, _COMPANY_KINDS))
        cid = self._entity("company", name)
        city = self.rng.choice(self.countries[country].cities)
        company = _Company(id=cid, country=country, city=city, media=name.split()[-1] in _MEDIA_KINDS)
        self.companies[cid] = company
        self.fact(cid, "headquartered_in", city)
        self.fact(cid, "operates_in", country)
        for other in self.countries[country].neighbours:
            if self.rng.random() < 0.5:
                self.fact(cid, "operates_in", other)
        if self.rng.random() < 0.15:
            self.fact(cid, "operates_in", self._other_country(country))
        return cid

    def hire(self, person: str, company: str) -> None:
        self.fact(person, "works_for", company)
        if person not in self.companies[company].employees:
            self.companies[company].employees.append(person)

    def add_person(self) -> str:
        rng = self.rng
        country = self._pick_country()
        name = self._unique_name(self.used_person_names, (_FIRST_NAMES, _LAST_NAMES))
        pid = self._entity("person", name)
        birth_country = country if rng.random() < 0.85 else self._other_country(country)
        birth_city = rng.choice(self.countries[birth_country].cities)
        self.fact(pid, "born_in", birth_city)
        self.fact(pid, "citizen_of", country)
        if birth_country != country and rng.random() < 0.4:
            self.fact(pid, "citizen_of", birth_country)
        company: str | None = None
        if self.companies and rng.random() < 0.9:
            local = [c.id for c in self.companies.values() if c.country == country]
            pool = local if local and rng.random() < 0.85 else list(self.companies)
            company = rng.choice(pool)
        if company is not None and rng.random() < 0.7:
            city = self.companies[company].city
        elif birth_country == country and rng.random() < 0.5:
            city = birth_city
        else:
            city = rng.choice(self.countries[country].cities)
        self.people[pid] = _Person(id=pid, index=len(self.people), country=country, city=city, company=company)
        self.fact(pid, "lives_in", city)
        if company is not None:
            self.hire(pid, company)
        return pid

    def befriend(self, pid: str) -> None:
        """One friendship for ``pid``: mostly a colleague, a neighbour (same city) or a compatriot."""
        rng = self.rng
        me = self.people[pid]
        roll = rng.random()
        if roll < 0.45 and me.company is not None:
            pool = self.companies[me.company].employees
        elif roll < 0.7:
            pool = [p.id for p in self.people.values() if p.city == me.city]
        elif roll < 0.93:
            pool = self._people_in(me.country)
        else:
            pool = list(self.people)
        pool = [p for p in pool if p != pid]
        if pool:
            self.symmetric(pid, "friend_of", rng.choice(pool))

    def add_colleagues(self, pid: str) -> None:
        me = self.people[pid]
        if me.company is None:
            return
        pool = [p for p in self.companies[me.company].employees if p != pid]
        for other in self.rng.sample(pool, min(len(pool), self.rng.choice((1, 1, 2)))):
            self.symmetric(pid, "colleague_of", other)

    def marry(self, *, rate: float) -> None:
        rng = self.rng
        single = [p for p in self.people.values() if p.spouse is None]
        for me in single:
            if me.spouse is not None or rng.random() >= rate:
                continue
            same_city = [p for p in single if p.spouse is None and p.id != me.id and p.city == me.city]
            same_country = [p for p in single if p.spouse is None and p.id != me.id and p.country == me.country]
            pool = same_city if same_city and rng.random() < 0.6 else same_country
            if not pool:
                continue
            other = rng.choice(pool)
            me.spouse, other.spouse = other.id, me.id
            self.symmetric(me.id, "spouse_of", other.id)

    def give_parents(self, pid: str) -> None:
        """Parents: a married couple of the child's country, both created before the child."""
        child = self.people[pid]
        couples = [
            p
            for p in self.people.values()
            if p.spouse is not None
            and p.country == child.country
            and p.index < child.index
            and self.people[p.spouse].index < child.index
            and p.id < p.spouse
            and p.spouse != pid
        ]
        if couples:
            parent = self.rng.choice(couples)
            assert parent.spouse is not None
            self.fact(parent.id, "parent_of", pid)
            self.fact(parent.spouse, "parent_of", pid)

    def add_film(self) -> str:
        rng = self.rng
        country = self._pick_country(fresh_bonus=0)
        title = self._unique_name(self.used_film_names, (("The",), _FILM_ADJECTIVES, _FILM_NOUNS))
        fid = self._entity("film", title)
        self.films[fid] = country
        self.fact(fid, "produced_in", country)
        local = [c for c in self.companies.values() if c.country == country]
        studios = [c.id for c in local if c.media] or [c.id for c in local] or list(self.companies)
        if studios:
            self.fact(fid, "produced_by", rng.choice(studios))
        cities = self.countries[country].cities
        city = rng.choice(cities) if rng.random() < 0.85 else rng.choice(list(self.city_country))
        self.fact(fid, "filmed_in", city)
        locals_ = self._people_in(country)
        everyone = list(self.people)
        if everyone:
            director = rng.choice(locals_ if locals_ and rng.random() < 0.9 else everyone)
            self.fact(director, "directed", fid)
            for _ in range(rng.randint(3, 6)):
                actor = rng.choice(locals_ if locals_ and rng.random() < 0.8 else everyone)
                self.fact(actor, "acted_in", fid)
        return fid

    def name_founders(self) -> None:
        """Every company gets a founder once it has people around: an early employee or a compatriot."""
        for company in self.companies.values():
            if company.founder is not None:
                continue
            pool = company.employees[:3] or self._people_in(company.country)
            if not pool:
                continue
            company.founder = self.rng.choice(pool)
            self.fact(company.founder, "founded", company.id)
            self.hire(company.founder, company.id)

    def grow(self, snapshot: int) -> list[tuple[str, str, str]]:
        """Grow the world by one snapshot; return the facts new in it."""
        rng, s = self.rng, self.scale
        self.snapshot = snapshot
        old_people = list(self.people)
        if snapshot == 0:
            for _ in range(min(len(_COUNTRIES), _rounded(6, s, minimum=2))):
                self.add_country()
            for country in list(self.countries):
                for _ in range(_rounded(4, s, minimum=2) - 1):
                    self.add_city(country)
            n_companies, n_people, n_films = _rounded(20, s), _rounded(120, s, minimum=4), _rounded(16, s)
        else:
            if snapshot % 2 == 0:
                fresh = self.add_country()
                if fresh is not None:
                    for _ in range(_rounded(3, s, minimum=2) - 1):
                        self.add_city(fresh)
            for _ in range(_rounded(5, s)):
                open_ = [c for c in self.countries if self.countries[c].spare_cities]
                if open_:
                    self.add_city(rng.choice(open_))
            n_companies, n_people, n_films = _rounded(10, s), _rounded(70, s, minimum=4), _rounded(14, s)
        new_companies = [self.add_company() for _ in range(n_companies)]
        for company in new_companies:  # new employers also hire some people already around
            local = [p for p in old_people if self.people[p].country == self.companies[company].country]
            for pid in rng.sample(local, min(len(local), rng.randint(0, 2))):
                self.hire(pid, company)
        new_people = [self.add_person() for _ in range(n_people)]
        for pid in new_people:
            for _ in range(rng.choice((1, 2, 2, 3))):
                self.befriend(pid)
            self.add_colleagues(pid)
        for pid in rng.sample(old_people, min(len(old_people), _rounded(20, s))):
            self.befriend(pid)  # old people keep making friends
        self.marry(rate=0.35 if snapshot == 0 else 0.15)
        for pid in new_people:
            if rng.random() < 0.4:
                self.give_parents(pid)
        self.name_founders()
        for _ in range(n_films):
            self.add_film()
        return self.emit()


def _split(
    facts: list[tuple[str, str, str]],
    *,
    rng: random.Random,
    seen_entities: set[str],
    seen_relations: set[str],
) -> dict[str, list[tuple[str, str, str]]]:
    """Split one snapshot's facts 3:1:1; valid/test facts that mention anything unseen in training move to train.

    ``seen_entities``/``seen_relations`` hold what training saw in earlier snapshots and are updated in place.
    """
    order = list(facts)
    rng.shuffle(order)
    n_eval = round(len(order) / 5)
    valid, test, train = order[:n_eval], order[n_eval : 2 * n_eval], order[2 * n_eval :]
    for h, r, t in train:
        seen_entities.update((h, t))
        seen_relations.add(r)
    kept: dict[str, list[tuple[str, str, str]]] = {"valid": [], "test": []}
    for split, part in (("valid", valid), ("test", test)):
        for h, r, t in part:
            if h in seen_entities and t in seen_entities and r in seen_relations:
                kept[split].append((h, r, t))
            else:
                train.append((h, r, t))
                seen_entities.update((h, t))
                seen_relations.add(r)
    return {"train": sorted(train), "valid": sorted(kept["valid"]), "test": sorted(kept["test"])}


def _check_target(out: Path) -> None:
    """Refuse (before writing anything) to replace a directory that is not an earlier example dataset."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ExampleTargetError(f"{out} exists and is not a directory; choose another output path")
    entries = sorted(out.iterdir())
    if not entries:
        return
    foreign: list[str] = []
    if not (out / _MARKER).is_file():
        foreign.append(f"(no {_MARKER} marker)")
    for entry in entries:
        if entry.name == _MARKER or (entry.name in _NAME_FILES and entry.is_file()):
            continue
        if entry.is_dir() and entry.name.isdigit():
            foreign += [str(p) for p in sorted(entry.iterdir()) if p.name not in {f"{s}.txt" for s in _SPLITS}]
            continue
        foreign.append(str(entry))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ExampleTargetError(
            f"{out} is not empty and does not look like an example dataset written by Evergraph ({shown}); "
            "nothing was written: choose an empty or new directory, or remove this one first"
        )


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.writelines(f"{line}\n" for line in lines)


def write_example_dataset(out: Path | str, *, seed: int = 0, num_snapshots: int = 5, scale: float = 1.0) -> Path:
    """Generate a small, readable, growing knowledge graph and write it under ``out``; return ``out``.

    Args:
        out: output directory. It must be new, empty, or an earlier output of this function (recognised by its
            ``.evergraph-example`` marker); an earlier output is replaced whole, and the new one appears only
            once it is complete (written next to ``out``, then renamed).
        seed: random seed (default 0); the same arguments always give the same bytes.
        num_snapshots: number of snapshots ``0..num_snapshots-1`` (default 5). Relations scheduled after the
            last snapshot appear in the last one.
        scale: multiplies the number of entities (default 1.0: about 550 entities and 6k facts over 5
            snapshots; 0.5 is quicker for tests).

    Raises:
        ValueError: ``num_snapshots < 1`` or ``scale <= 0``.
        ExampleTargetError: ``out`` holds something else; nothing is written.
    """
    if num_snapshots < 1:
        raise ValueError(f"num_snapshots must be at least 1, got {num_snapshots}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    out = Path(out).expanduser().resolve()
    _check_target(out)

    world = _World(seed=seed, num_snapshots=num_snapshots, scale=scale)
    split_rng = random.Random(f"{seed}/split")
    seen_entities: set[str] = set()
    seen_relations: set[str] = set()
    snapshots: list[dict[str, list[tuple[str, str, str]]]] = []
    for n in range(num_snapshots):
        parts = _split(world.grow(n), rng=split_rng, seen_entities=seen_entities, seen_relations=seen_relations)
        snapshots.append(parts)
        logger.info(
            "example snapshot %d: %d entities, %d relations so far; train/valid/test = %d/%d/%d",
            n,
            len(seen_entities),
            len(seen_relations),
            *(len(parts[s]) for s in _SPLITS),
        )
    used_relations = [r for r in EXAMPLE_RELATIONS if r in seen_relations]
    used_entities = [e for e in world.names if e in seen_entities]

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)
        for n, parts in enumerate(snapshots):
            (tmp / str(n)).mkdir()
            for split in _SPLITS:
                _write_lines(tmp / str(n) / f"{split}.txt", ["\t".join(f) for f in parts[split]])
        _write_lines(tmp / "entity_names.tsv", [f"{e}\t{world.names[e]}" for e in used_entities])
        _write_lines(tmp / "relation_names.tsv", [f"{r}\t{EXAMPLE_RELATIONS[r]}" for r in used_relations])
        _write_lines(
            tmp / _MARKER,
            [
                "Evergraph example dataset (evergraph.kg.engine.example.write_example_dataset); safe to regenerate.",
                f"seed={seed} num_snapshots={num_snapshots} scale={scale}",
            ],
        )
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / "previous")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info(
        "wrote example dataset to %s: %d snapshots, %d entities, %d relations, %d facts",
        out,
        num_snapshots,
        len(used_entities),
        len(used_relations),
        sum(len(p[s]) for p in snapshots for s in _SPLITS),
    )
    return out
