"""Knowledge-guiding benchmark: questions as people ask them, written from FB15k-237 facts; writes the ``guide``
section of ``bench/RESULTS.md``.

Needs the ENTITY lkge run of ``python bench/lifelong.py --datasets ENTITY --strategies lkge`` (its checkpoint of
``--snapshot``, default 2, the setting of issue 15) and ``../shared/data/fb15k237_text``. It writes that snapshot
as a serving bundle (with the readable names) into ``bench/runs/guide-home`` and measures:

- **questions** from the facts of every snapshot up to the bundle's (train, valid and test: the bundle knows only
  the train facts, so some answers are not known to it, as for real questions): for each of the relation families
  below, several hand-written phrasings ("Where did {e} go to college?", "what school did {e} graduate from");
  one-hop questions ask for the other end of a fact, two-hop questions for the end of a composition ("In which
  country was {e} born?": place of birth, then the country containing it). Every gold answer of the question
  counts (all ``t`` with ``(topic, r, t)`` in the full graph, or reached through any intermediate). The topic is
  written as named (40%), all in lower case without a question mark at times (35%), or by a partial name (25%:
  a person's last name, "the Lakers"; only when the entity is the best known holder of that name, as people
  shorten the names of famous entities);
- **answer in context**: a gold answer is an end of a cited fact (known or inferred), and the **ceilings** of a
  perfect ranker over the same bundle: a gold answer is a known neighbour of the topic (1 hop) or within two
  hops of it (2 hops);
- **linking accuracy**: the topic is the first linked entity, and among the anchors;
- **latency** of ``guide`` in-process (p50/p95 over the questions), and with ``--http`` over HTTP
  (``evergraph serve`` in a subprocess) with 1 and 16 concurrent clients;
- **abstention** on questions about FB15k-237 entities that are *not* in the graph.

    python bench/guide.py [--per-family 12] [--snapshot 4] [--http] [--no-write]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime as dt
import json
import logging
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._results import write_section  # noqa: E402
from evergraph.flows.services import free_port, start_knowledge_server, stop_process  # noqa: E402
from evergraph.kg.engine.ingest import GrowingKG, read_names  # noqa: E402
from evergraph.kg.knowledge.guide import GuideConfig, relation_phrase  # noqa: E402
from evergraph.kg.knowledge.knowledge import Knowledge  # noqa: E402
from evergraph.kg.knowledge.linking import Linker  # noqa: E402
from evergraph.kg.knowledge.text import normalize_text  # noqa: E402
from evergraph.kg.store.bundle_writer import switch_pointer, write_bundle  # noqa: E402
from evergraph.kg.store.facts import FactTable  # noqa: E402
from evergraph.kg.store.home import EvergraphHome  # noqa: E402

logger = logging.getLogger("bench.guide")

SHARED = ROOT.parent / "shared" / "data"
RUN = ROOT / "bench" / "runs" / "ENTITY-lkge-lkge-paper"
HOME = ROOT / "bench" / "runs" / "guide-home"

# fmt: off
# -- question families: (name, relation path, direction, answer kind, templates); "fwd": the topic is the head
# of the fact and the answer its tail, "inv": the topic is the tail. {e} is the topic's name.

ONE_HOP: list[tuple[str, str, str, str | None, tuple[str, ...]]] = [
    ("birthplace", "/people/person/place_of_birth", "fwd", "place",
     ("Where was {e} born?", "What is the birthplace of {e}?", "In which city was {e} born?",
      "what town is {e} originally from")),
    ("deathplace", "/people/deceased_person/place_of_death", "fwd", "place",
     ("Where did {e} die?", "In which city did {e} pass away?", "What was the place of death of {e}?")),
    ("burial", "/people/deceased_person/place_of_burial", "fwd", "place",
     ("Where is {e} buried?", "what is the burial place of {e}")),
    ("nationality", "/people/person/nationality", "fwd", "place",
     ("What is the nationality of {e}?", "Which country is {e} a citizen of?", "what country is {e} from")),
    ("profession", "/people/person/profession", "fwd", None,
     ("What does {e} do for a living?", "What is {e}'s profession?", "what was {e}'s job",
      "What is {e}'s occupation?")),
    ("gender", "/people/person/gender", "fwd", None, ("Is {e} a man or a woman?", "What gender is {e}?")),
    ("religion", "/people/person/religion", "fwd", None,
     ("What religion does {e} practice?", "What is {e}'s religion?", "what faith does {e} follow")),
    ("spouse", "/people/person/spouse_s./people/marriage/spouse", "fwd", "person",
     ("Who is {e} married to?", "Who was {e}'s wife?", "who is {e}'s husband", "Who did {e} marry?")),
    ("lived", "/people/person/places_lived./people/place_lived/location", "fwd", "place",
     ("Where did {e} live?", "What cities has {e} lived in?", "where does {e} live")),
    ("languages", "/people/person/languages", "fwd", None,
     ("What languages does {e} speak?", "Which language did {e} speak?")),
    ("college", "/education/educational_institution/students_graduates./education/education/student", "inv", None,
     ("Where did {e} go to college?", "Which university did {e} attend?", "where did {e} study",
      "What school did {e} graduate from?")),
    ("sibling", "/people/person/sibling_s./people/sibling_relationship/sibling", "fwd", "person",
     ("Who are {e}'s siblings?", "Who is the brother of {e}?", "who is {e}'s sister")),
    ("employer", "/people/person/employment_history./business/employment_tenure/company", "fwd", None,
     ("Where did {e} work?", "Which company employed {e}?", "who did {e} work for")),
    ("ethnicity", "/people/ethnicity/people", "inv", None,
     ("What is {e}'s ethnicity?", "What ethnic group does {e} belong to?")),
    ("cause_of_death", "/people/cause_of_death/people", "inv", None,
     ("How did {e} die?", "What did {e} die of?", "what was the cause of death of {e}")),
    ("acted_in", "/film/actor/film./film/performance/film", "fwd", None,
     ("What movies has {e} been in?", "Which films did {e} act in?", "what films did {e} star in")),
    ("cast", "/film/actor/film./film/performance/film", "inv", "person",
     ("Who acted in {e}?", "Who starred in {e}?", "who are the actors in {e}")),
    ("directed_by", "/film/director/film", "inv", "person",
     ("Who directed {e}?", "Who is the director of {e}?", "who was {e} directed by")),
    ("directed", "/film/director/film", "fwd", None,
     ("What films did {e} direct?", "Which movies were directed by {e}?")),
    ("film_genre", "/film/film/genre", "fwd", None,
     ("What genre is {e}?", "What kind of film is {e}?", "what type of movie is {e}")),
    ("film_language", "/film/film/language", "fwd", None,
     ("What language is {e} in?", "In what language was {e} made?")),
    ("film_country", "/film/film/country", "fwd", "place",
     ("Which country produced {e}?", "where was the film {e} made", "What country is the movie {e} from?")),
    ("film_music", "/film/film/music", "fwd", "person",
     ("Who composed the music for {e}?", "Who wrote the score of {e}?")),
    ("written_by", "/film/film/written_by", "fwd", "person",
     ("Who wrote {e}?", "Who is the screenwriter of {e}?")),
    ("produced_by", "/film/film/produced_by", "fwd", "person",
     ("Who produced {e}?", "who was the producer of {e}")),
    ("studio", "/film/film/production_companies", "fwd", None,
     ("Which studio made {e}?", "What company produced the film {e}?")),
    ("filmed_at", "/film/film/featured_film_locations", "fwd", "place",
     ("Where was {e} filmed?", "What are the filming locations of {e}?")),
    ("located_in", "/location/location/contains", "inv", "place",
     ("Where is {e} located?", "What state is {e} in?", "which country is {e} in")),
    ("contains", "/location/location/contains", "fwd", "place",
     ("What cities are in {e}?", "What places are located in {e}?")),
    ("capital", "/location/country/capital", "fwd", "place",
     ("What is the capital of {e}?", "what is {e}'s capital city")),
    ("official_language", "/location/country/official_language", "fwd", None,
     ("What is the official language of {e}?", "What language do they speak in {e}?")),
    ("currency", "/location/statistical_region/gdp_nominal./measurement_unit/dated_money_value/currency", "fwd",
     None, ("What currency does {e} use?", "what is the currency of {e}", "What money do they use in {e}?")),
    ("government", "/location/country/form_of_government", "fwd", None,
     ("What type of government does {e} have?", "What is the political system of {e}?")),
    ("time_zone", "/location/location/time_zones", "fwd", None,
     ("What time zone is {e} in?", "what is the time zone of {e}")),
    ("borders", "/location/location/adjoin_s./location/adjoining_relationship/adjoins", "fwd", "place",
     ("What borders {e}?", "Which places border {e}?", "what are the neighbouring places of {e}")),
    ("music_genre", "/music/genre/artists", "inv", None,
     ("What kind of music does {e} play?", "What genre is {e}'s music?")),
    ("record_label", "/music/record_label/artist", "inv", None,
     ("What record label is {e} signed to?", "which label released {e}'s music")),
    ("instrument", "/music/instrument/instrumentalists", "inv", None,
     ("What instrument does {e} play?", "which instruments did {e} play")),
    ("origin", "/music/artist/origin", "fwd", "place", ("Where is {e} from?", "where did the band {e} form")),
    ("band", "/music/group_member/membership./music/group_membership/group", "fwd", None,
     ("What band was {e} in?", "which group was {e} a member of")),
    ("team_location", "/sports/sports_team_location/teams", "inv", "place",
     ("Where do {e} play?", "What city are {e} based in?")),
    ("plays_for", "/sports/pro_athlete/teams./sports/sports_team_roster/team", "fwd", None,
     ("What team does {e} play for?", "Which teams has {e} played for?")),
    ("team_sport", "/sports/sports_team/sport", "fwd", None, ("What sport do {e} play?",)),
    ("team_colors", "/sports/sports_team/colors", "fwd", None, ("What are the team colors of {e}?",)),
    ("headquarters", "/organization/organization/headquarters./location/mailing_address/citytown", "fwd", "place",
     ("Where is {e} headquartered?", "In which city is {e} based?")),
    ("founder", "/organization/organization_founder/organizations_founded", "inv", "person",
     ("Who founded {e}?", "who started {e}")),
    ("industry", "/business/business_operation/industry", "fwd", None,
     ("What industry is {e} in?", "What kind of business is {e}?")),
    ("awards_won", "/award/award_winning_work/awards_won./award/award_honor/award", "fwd", None,
     ("What awards did {e} win?", "Which awards has {e} received?")),
    ("nominations", "/award/award_nominee/award_nominations./award/award_nomination/award", "fwd", None,
     ("What awards was {e} nominated for?", "which award nominations did {e} get")),
    ("influenced_by", "/influence/influence_node/influenced_by", "fwd", "person",
     ("Who influenced {e}?", "who were {e}'s influences")),
    ("tv_cast", "/tv/tv_program/regular_cast./tv/regular_tv_appearance/actor", "fwd", "person",
     ("Who stars in {e}?", "who are the regular cast members of {e}")),
    ("tv_creator", "/tv/tv_program/program_creator", "fwd", "person",
     ("Who created {e}?", "who is the creator of {e}")),
    ("party", "/government/political_party/politicians_in_this_party./government/political_party_tenure/politician",
     "inv", None, ("What political party is {e} in?", "which party does {e} belong to")),
    ("school_colors", "/education/educational_institution/colors", "fwd", None,
     ("What are the colors of {e}?", "what are {e}'s school colours")),
    ("major", "/education/field_of_study/students_majoring./education/education/student", "inv", None,
     ("What did {e} study?", "what was {e}'s major")),
    ("symptoms", "/medicine/symptom/symptom_of", "inv", None, ("What are the symptoms of {e}?",)),
    ("continent", "/base/locations/continents/countries_within", "inv", "place",
     ("What continent is {e} in?", "which continent is {e} part of")),
]

TWO_HOP: list[tuple[str, tuple[tuple[str, str], tuple[str, str]], str | None, str | None, tuple[str, ...]]] = [
    ("birth_country", (("/people/person/place_of_birth", "fwd"), ("/location/location/contains", "inv")), "country",
     "place", ("In which country was {e} born?", "what country was {e} born in")),
    ("death_country", (("/people/deceased_person/place_of_death", "fwd"), ("/location/location/contains", "inv")),
     "country", "place", ("In which country did {e} die?", "what country did {e} die in")),
    ("director_nationality", (("/film/director/film", "inv"), ("/people/person/nationality", "fwd")), None, "place",
     ("What is the nationality of the director of {e}?", "which country is the director of {e} from")),
    ("director_birthplace", (("/film/director/film", "inv"), ("/people/person/place_of_birth", "fwd")), None,
     "place", ("Where was the director of {e} born?", "where was the man who directed {e} born")),
    ("spouse_birthplace", (("/people/person/spouse_s./people/marriage/spouse", "fwd"),
                           ("/people/person/place_of_birth", "fwd")), None, "place",
     ("Where was {e}'s spouse born?", "where was the wife of {e} born")),
    ("team_city", (("/sports/pro_athlete/teams./sports/sports_team_roster/team", "fwd"),
                   ("/sports/sports_team_location/teams", "inv")), None, "place",
     ("In which city does {e}'s team play?", "where is the team of {e} based")),
    ("nationality_capital", (("/people/person/nationality", "fwd"), ("/location/country/capital", "fwd")), None,
     "place", ("What is the capital of {e}'s country?", "what is the capital city of the country {e} is from")),
    ("alma_mater_place", (("/education/educational_institution/students_graduates./education/education/student",
                           "inv"), ("/location/location/contains", "inv")), None, "place",
     ("In which city is the university {e} attended?", "where is the college {e} went to")),
    ("film_country_language", (("/film/film/country", "fwd"), ("/location/country/official_language", "fwd")), None,
     None, ("What is the official language of the country {e} was made in?",)),
    ("band_birthplaces", (("/music/group_member/membership./music/group_membership/group", "inv"),
                          ("/people/person/place_of_birth", "fwd")), None, "place",
     ("Where were the members of {e} born?",)),
    ("actor_directors", (("/film/actor/film./film/performance/film", "fwd"), ("/film/director/film", "inv")), None,
     "person", ("Who directed the films {e} acted in?", "which directors has {e} worked with")),
    ("hq_country", (("/organization/organization/headquarters./location/mailing_address/citytown", "fwd"),
                    ("/location/location/contains", "inv")), "country", "place",
     ("In which country is {e} headquartered?",)),
]
# fmt: on


@dataclasses.dataclass(frozen=True)
class Question:
    text: str
    topic: int
    answers: frozenset[int]
    family: str
    hops: int
    form: str  # "name", "lower" or "partial"


def prepare_home(run: Path, text: Path, home: EvergraphHome, *, snapshot: int) -> Path:
    """Bundle ``snapshot`` of ``run`` with the FB15k-237 names as version 1 of ``home``; returns the bundle."""
    names = home.root / "names"
    names.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(text / "entity2text.txt", names / "entity_names.tsv")
    shutil.copyfile(text / "relation2text.txt", names / "relation_names.tsv")
    bundle = home.bundle_dir("1")
    if bundle.exists():
        shutil.rmtree(bundle)  # always rebuild: the bundle format or calibration may have changed
    started = time.perf_counter()
    write_bundle(run_dir=run, snapshot=snapshot, dest=bundle, version="1", names=names)
    logger.info("bundle written in %.1fs", time.perf_counter() - started)
    switch_pointer(pointer=home.champion_pointer, bundle=bundle, version="1")
    return bundle


class QuestionMaker:
    """Questions from the full graph (train, valid and test facts up to the bundle's snapshot)."""

    def __init__(self, knowledge: Knowledge, data: Path, *, seed: int) -> None:
        bundle = knowledge.bundle
        self.bundle = bundle
        kg = GrowingKG.load(data, upto=bundle.snapshot, entities=bundle.entities, relations=bundle.relations)
        facts = torch.cat([s.facts for s in kg.snapshots])
        self.facts = facts
        self.full = FactTable(
            torch.cat([facts, torch.zeros(len(facts), 1, dtype=torch.long)], 1),
            num_entities=len(bundle.entities),
            num_relations=len(bundle.relations),
        )
        self.rng = random.Random(seed)
        labels = bundle.relations.labels
        self.names = {e: bundle.entity_names.get(label) for e, label in enumerate(bundle.entities.labels)}
        heads = {
            kind: set(facts[torch.isin(facts[:, 1], torch.tensor(ids)), 0].tolist()) if ids else set()
            for kind, ids in {
                "person": [r for r, label in enumerate(labels) if label.startswith("/people/person/")],
                "team": [r for r, label in enumerate(labels) if label.startswith("/sports/sports_team/")],
                "country": [r for r, label in enumerate(labels) if label.startswith("/location/country/")],
            }.items()
        }
        self.persons, self.teams, self.countries = heads["person"], heads["team"], heads["country"]
        degree = torch.bincount(bundle.facts.facts[:, [0, 2]].reshape(-1), minlength=len(bundle.entities))
        self.degree = degree.tolist()
        self.holders: dict[str, set[int]] = {}
        self.exact: set[str] = set()
        for e, name in self.names.items():
            if name:
                words = normalize_text(name).split()
                self.exact.add(" ".join(words))
                for word in words:
                    self.holders.setdefault(word, set()).add(e)

    def partial(self, entity: int) -> str | None:
        """A short name people would use: a person's last name, "the <last word>" of a team, a name without its
        leading "The"; only when no entity is named so and ``entity`` is the best known entity whose name holds
        the word."""
        name = self.names.get(entity) or ""
        words = name.split()
        if len(words) < 2:
            return None
        if entity in self.persons or entity in self.teams:
            word = words[-1]
        elif words[0].lower() == "the" and len(words) == 2:
            word = words[1]
        else:
            return None
        key = normalize_text(word)
        if len(key) < 4 or key in self.exact or " " in key:
            return None
        holders = self.holders.get(key, set())
        if max(holders, key=lambda e: (self.degree[e], -e)) != entity:
            return None
        return f"the {word}" if entity in self.teams else word

    def write(self, template: str, topic: int) -> tuple[str, str]:
        """The question text and its form."""
        roll = self.rng.random()
        name = self.names[topic] or ""
        short = self.partial(topic) if roll >= 0.75 else None
        if short is not None:
            text = template.format(e=short)
            return (text.lower().rstrip("?") if self.rng.random() < 0.5 else text), "partial"
        text = template.format(e=name)
        if roll >= 0.4:
            return text.lower().rstrip("?") if self.rng.random() < 0.5 else text.lower(), "lower"
        return text, "name"

    def one_hop(self, *, per_family: int) -> list[Question]:
        questions: list[Question] = []
        for family, label, direction, _kind, templates in ONE_HOP:
            if label not in self.bundle.relations:
                logger.warning("family %s: relation %s is not in the bundle", family, label)
                continue
            r = self.bundle.relations.id(label)
            rows = self.facts[self.facts[:, 1] == r].tolist()
            self.rng.shuffle(rows)
            topics: set[int] = set()
            for h, _, t in rows:
                topic = h if direction == "fwd" else t
                if topic in topics or not self.names.get(topic):
                    continue
                answers = set(self.full.answers(topic, 2 * r + (direction == "inv")).tolist()) - {topic}
                if not answers:
                    continue
                topics.add(topic)
                text, form = self.write(self.rng.choice(templates), topic)
                questions.append(Question(text, topic, frozenset(answers), family, 1, form))
                if len(topics) >= per_family:
                    break
        return questions

    def two_hop(self, *, per_family: int) -> list[Question]:
        questions: list[Question] = []
        for family, ((label1, d1), (label2, d2)), only, _kind, templates in TWO_HOP:
            if label1 not in self.bundle.relations or label2 not in self.bundle.relations:
                continue
            r1, r2 = self.bundle.relations.id(label1), self.bundle.relations.id(label2)
            m1, m2 = 2 * r1 + (d1 == "inv"), 2 * r2 + (d2 == "inv")
            rows = self.facts[self.facts[:, 1] == r1].tolist()
            self.rng.shuffle(rows)
            topics: set[int] = set()
            for h, _, t in rows:
                topic = h if d1 == "fwd" else t
                if topic in topics or not self.names.get(topic):
                    continue
                answers: set[int] = set()
                for middle in self.full.answers(topic, m1).tolist():
                    answers.update(self.full.answers(middle, m2).tolist())
                answers.discard(topic)
                if only == "country":
                    answers &= self.countries
                if not answers:
                    continue
                topics.add(topic)
                text, form = self.write(self.rng.choice(templates), topic)
                questions.append(Question(text, topic, frozenset(answers), family, 2, form))
                if len(topics) >= per_family:
                    break
        return questions


class Ceilings:
    """Whether a perfect ranker over the bundle's known facts could cite a gold answer: a known neighbour of
    the topic (1 hop), or within two hops."""

    def __init__(self, knowledge: Knowledge) -> None:
        self.facts = knowledge.bundle.facts
        self._near: dict[int, tuple[set[int], torch.Tensor]] = {}

    def reach(self, topic: int) -> tuple[set[int], torch.Tensor]:
        if topic not in self._near:
            first = torch.unique(self.facts.about_arrays(topic)[2])
            around = [self.facts.about_arrays(int(m))[2] for m in first.tolist()]
            second = torch.unique(torch.cat(around)) if around else first
            self._near[topic] = (set(first.tolist()), second)
        return self._near[topic]

    def __call__(self, question: Question) -> tuple[bool, bool]:
        first, second = self.reach(question.topic)
        answers = torch.tensor(sorted(question.answers))
        one = bool(first & question.answers)
        return one, one or bool(torch.isin(answers, second).any())


def evaluate(knowledge: Knowledge, questions: list[Question], ceilings: Ceilings) -> dict[str, object]:
    """Per question: linked first / among anchors, abstained, answer in a known / inferred fact, the ceilings,
    facts and tokens in the context, and the guide's time."""
    rows = []
    for question in questions:
        started, cpu = time.perf_counter(), time.thread_time()
        result = knowledge.guide(question.text)
        seconds, cpu = time.perf_counter() - started, time.thread_time() - cpu
        found = {"known": False, "inferred": False}
        for fact in result.facts:
            ends = {fact.head.id, fact.tail.id} - {question.topic}
            if ends & question.answers:
                found[fact.kind] = True
        one, two = ceilings(question)
        anchors = [] if result.abstained and not result.relations else [e.id for e in result.entities]
        rows.append(
            {
                "family": question.family,
                "hops": question.hops,
                "form": question.form,
                "first": bool(result.entities) and result.entities[0].id == question.topic,
                "anchor": question.topic in anchors,
                "abstained": result.abstained,
                "known": found["known"],
                "inferred": found["inferred"],
                "hit": found["known"] or found["inferred"],
                "ceiling1": one,
                "ceiling2": two,
                "facts": len(result.facts),
                "tokens": result.context_tokens,
                "seconds": seconds,
                "cpu": cpu,
                "question": question.text,
                "linked": [e.name for e in result.entities],
                "asked": [r.label for r in result.relations],
            }
        )
    return {"rows": rows}


def summary(rows: list[dict[str, object]]) -> dict[str, float]:
    n = max(len(rows), 1)

    def share(key: str) -> float:
        return sum(bool(r[key]) for r in rows) / n

    seconds = np.array([float(r["seconds"]) for r in rows]) * 1000 if rows else np.zeros(1)
    cpu = np.array([float(r["cpu"]) for r in rows]) * 1000 if rows else np.zeros(1)
    result = {key: share(key) for key in ("first", "anchor", "abstained", "hit", "known", "inferred")}
    result.update(ceiling1=share("ceiling1"), ceiling2=share("ceiling2"))
    result["of_ceiling1"] = result["hit"] / result["ceiling1"] if result["ceiling1"] else float("nan")
    result["of_ceiling2"] = result["hit"] / result["ceiling2"] if result["ceiling2"] else float("nan")
    result["facts"] = sum(int(r["facts"]) for r in rows) / n
    result["tokens"] = sum(int(r["tokens"]) for r in rows) / n
    result["p50"], result["p95"] = float(np.percentile(seconds, 50)), float(np.percentile(seconds, 95))
    result["cpu50"] = float(np.percentile(cpu, 50))
    result["n"] = len(rows)
    return result


def unknown_questions(knowledge: Knowledge, text: Path, *, count: int, seed: int) -> list[str]:
    """Questions about FB15k-237 entities with a name but in no snapshot of the graph."""
    names = read_names(text / "entity2text.txt")
    outside = sorted(name for label, name in names.items() if label not in knowledge.bundle.entities)
    rng = random.Random(seed)
    relation_names = knowledge.bundle.relation_names
    phrases = [relation_phrase(label, relation_names.get(label)) for label in knowledge.bundle.relations]
    rng.shuffle(outside)
    return [f"What is the {rng.choice(phrases)} of {name}?" for name in outside[:count]]


def http_latency(
    home: EvergraphHome, questions: list[str], *, clients: int, requests: int
) -> tuple[float, float, float]:
    """p50, p95 (ms) and throughput (requests/s) of POST /guide against `evergraph serve` in a subprocess."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = start_knowledge_server(home=home, port=free_port(), env=env, logs=home.root / "logs")
    url = str(server.url)
    try:

        def worker(index: int) -> list[float]:
            latencies = []
            with httpx.Client(base_url=url, timeout=30) as http:
                for i in range(index, requests, clients):
                    started = time.perf_counter()
                    response = http.post("/guide", json={"question": questions[i % len(questions)]})
                    response.raise_for_status()
                    latencies.append(time.perf_counter() - started)
            return latencies

        with httpx.Client(base_url=url, timeout=30) as http:  # warm-up
            for question in questions[:10]:
                http.post("/guide", json={"question": question}).raise_for_status()
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            latencies = [x for part in pool.map(worker, range(clients)) for x in part]
        elapsed = time.perf_counter() - started
        values = np.array(latencies) * 1000
        return float(np.percentile(values, 50)), float(np.percentile(values, 95)), len(latencies) / elapsed
    finally:
        stop_process(server)


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}%"


def quality_table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """One column per configuration; rows for all questions, one-hop and two-hop questions."""
    names = list(results)
    lines = ["| measure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    rows = [
        ("answer in context, all questions", "all", "hit", _pct),
        ("... of the 1-hop ceiling (goal >= 90%)", "all", "of_ceiling1", _pct),
        ("... of the 2-hop ceiling (goal >= 75%)", "all", "of_ceiling2", _pct),
        ("answer in a known fact", "all", "known", _pct),
        ("answer in an inferred fact", "all", "inferred", _pct),
        ("answer in context, 1-hop questions", "one", "hit", _pct),
        ("... of their 1-hop ceiling", "one", "of_ceiling1", _pct),
        ("answer in context, 2-hop questions", "two", "hit", _pct),
        ("... of their 2-hop ceiling", "two", "of_ceiling2", _pct),
        ("linking: topic is the first entity", "all", "first", _pct),
        ("linking: topic among the anchors", "all", "anchor", _pct),
        ("abstained", "all", "abstained", _pct),
        ("facts per context", "all", "facts", lambda x: f"{x:.1f}"),
        ("tokens per context", "all", "tokens", lambda x: f"{x:.0f}"),
        ("guide p50 ms in-process (goal <= 20)", "all", "p50", lambda x: f"{x:.1f}"),
        ("guide p95 ms in-process", "all", "p95", lambda x: f"{x:.1f}"),
        ("guide p50 CPU ms (the thread's own time)", "all", "cpu50", lambda x: f"{x:.1f}"),
    ]
    for label, part, key, fmt in rows:
        lines.append(f"| {label} | " + " | ".join(fmt(results[n][part][key]) for n in names) + " |")
    return "\n".join(lines)


def breakdown(rows: list[dict[str, object]], key: str) -> str:
    groups: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        groups.setdefault(str(row[key]), []).append(row)
    lines = [
        f"| {key} | questions | linked first | answer in context | 1-hop ceiling | 2-hop ceiling |",
        "|---|---|---|---|---|---|",
    ]
    for name in sorted(groups):
        s = summary(groups[name])
        lines.append(
            f"| {name} | {s['n']} | {_pct(s['first'])} | {_pct(s['hit'])} | {_pct(s['ceiling1'])} | "
            f"{_pct(s['ceiling2'])} |"
        )
    return "\n".join(lines)


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=RUN)
    parser.add_argument("--data", type=Path, default=SHARED / "lkge" / "ENTITY")
    parser.add_argument("--text", type=Path, default=SHARED / "fb15k237_text")
    parser.add_argument("--snapshot", type=int, default=2, help="the champion's snapshot (default 2, as in issue 15)")
    parser.add_argument("--per-family", type=int, default=12, help="questions per family (default 12)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--http", action="store_true", help="also measure the HTTP server (slow)")
    parser.add_argument("--configs", default="default,1 hop,hashing", help="comma-separated: default, 1 hop, hashing")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--dump", type=Path, default=None, help="write every question's outcome as JSON here")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a GuideConfig field for every configuration"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("evergraph").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    checkpoint = args.run / "checkpoints" / f"snapshot-{args.snapshot}.pt"
    if not checkpoint.is_file() or not args.text.is_dir():
        logger.error(
            "needs %s (run bench/lifelong.py --datasets ENTITY --strategies lkge) and %s", checkpoint, args.text
        )
        return 2
    torch.set_num_threads(1)
    home = EvergraphHome(HOME)
    bundle = prepare_home(args.run, args.text, home, snapshot=args.snapshot)
    started = time.perf_counter()
    overrides = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    knowledge = Knowledge.load(bundle, guide_config=GuideConfig(**overrides))
    load_seconds = time.perf_counter() - started
    maker = QuestionMaker(knowledge, args.data, seed=args.seed)
    questions = maker.one_hop(per_family=args.per_family) + maker.two_hop(per_family=2 * args.per_family)
    families = Counter(q.family for q in questions)
    logger.info("%d questions from %d families", len(questions), len(families))
    ceilings = Ceilings(knowledge)
    for question in questions[:20]:
        knowledge.guide(question.text)  # warm-up
    configs = {
        "default": lambda: knowledge,
        "1 hop": lambda: Knowledge(
            knowledge.bundle, linker=knowledge.linker, guide_config=GuideConfig(**{**overrides, "hops": 1})
        ),
        "hashing": lambda: Knowledge(
            knowledge.bundle,
            linker=Linker.from_bundle(knowledge.bundle, relation_encoder=None),
            guide_config=GuideConfig(**{**overrides, "hops": 1}),
        ),
    }
    results: dict[str, dict[str, dict[str, float]]] = {}
    default_rows: list[dict[str, object]] = []
    for name in [c.strip() for c in args.configs.split(",") if c.strip()]:
        rows = evaluate(configs[name](), questions, ceilings)["rows"]
        if name == "default":
            default_rows = rows
        if args.dump:
            args.dump.mkdir(parents=True, exist_ok=True)
            (args.dump / f"{name.replace(' ', '-')}.json").write_text(json.dumps(rows, indent=1))
        results[name] = {
            "all": summary(rows),
            "one": summary([r for r in rows if r["hops"] == 1]),
            "two": summary([r for r in rows if r["hops"] == 2]),
        }
        logger.info("%s: %s", name, results[name]["all"])
    outside = unknown_questions(knowledge, args.text, count=200, seed=args.seed)
    abstain_outside = sum(knowledge.guide(q).abstained for q in outside) / max(len(outside), 1)
    http = ""
    if args.http:
        texts = [q.text for q in questions]
        http1 = http_latency(home, texts, clients=1, requests=len(texts))
        http16 = http_latency(home, texts, clients=16, requests=2 * len(texts))
        http = (
            f"HTTP `POST /guide` (`evergraph serve` in a subprocess): 1 client p50 {http1[0]:.1f} ms, p95 "
            f"{http1[1]:.1f} ms ({http1[2]:.0f} req/s); 16 concurrent clients p50 {http16[0]:.1f} ms, p95 "
            f"{http16[1]:.1f} ms ({http16[2]:.0f} req/s)."
        )
    info = knowledge.info()
    forms = Counter(q.form for q in questions)
    examples = "\n".join(
        f"- {q.text} ({q.family}, {q.hops} hop{'s' if q.hops > 1 else ''})"
        for q in questions[:: max(1, len(questions) // 8)][:8]
    )
    body = f"""## Knowledge guiding (`bench/guide.py`)

ENTITY snapshot {args.snapshot} (lkge run, {info.num_entities:,} entities, {info.num_facts:,} known training
facts), names from `fb15k237_text`. {len(questions)} questions from {len(families)} relation families
({sum(q.hops == 1 for q in questions)} one-hop from {sum(1 for f in ONE_HOP if f[0] in families)} families,
{sum(q.hops == 2 for q in questions)} two-hop compositions from {sum(1 for f in TWO_HOP if f[0] in families)} families),
2-4 hand-written phrasings per family, written from the facts of snapshots 0-{args.snapshot} (train, valid and test:
the bundle knows only the train facts); topics written as named ({forms["name"]}), in lower case ({forms["lower"]})
or by a partial name ({forms["partial"]}). Examples:

{examples}

Configurations: `default` = `GuideConfig()` with the default linker (relation encoder
`{knowledge.linker.relation_encoder!r}`, two-hop paths); `1 hop` = the same with `hops=1`; `hashing` = the
character encoder for relations and `hops=1` (the guide's settings before this change, with the new linking).
Bundle load + linker build {load_seconds:.1f} s. {dt.date.today()}, commit {commit()},
{platform.processor() or platform.machine()}, 1 torch thread, a 2-core machine shared with other jobs (latency
is noisy).

{quality_table(results)}

By how the topic is written (`default`):

{breakdown(default_rows, "form")}

By hops (`default`):

{breakdown(default_rows, "hops")}

Abstention on questions about entities not in the graph: **{abstain_outside:.3f}** (200 questions). {http}
"""
    print(body)
    if not args.no_write:
        write_section("guide", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
