"""Retraction end to end on the example KG: evaluation, unlearning, bundles, inference, linking and the guide."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import torch

from evergraph.kg.engine.config import LKGEConfig, RunConfig, UnlearningConfig
from evergraph.kg.engine.evaluation import RankingMetrics, evaluate_stream, filtered_ranks
from evergraph.kg.engine.ingest import GrowingKG, read_split
from evergraph.kg.engine.lifelong import LifelongRun
from evergraph.kg.engine.run_files import RunPaths, load_model_checkpoint
from evergraph.kg.engine.snapshot import Snapshot, fact_keys
from evergraph.kg.engine.unlearning import trained_removals
from evergraph.kg.knowledge.knowledge import Knowledge
from evergraph.kg.store.bundle import Bundle
from evergraph.kg.store.bundle_writer import write_bundle
from tests.conftest import fast_config

FORGOTTEN = 3


def with_retractions(example: Path, out: Path, *, seed: int = 0) -> tuple[Path, list[str]]:
    """Snapshots 0-2 of the example KG; snapshot 2 retracts 10% of the earlier train facts and every fact of
    ``FORGOTTEN`` people ("forget this entity"), whose later facts are dropped too."""
    rng = random.Random(seed)
    shutil.copytree(example, out, ignore=lambda d, names: [n for n in names if n.isdigit() and int(n) > 2])
    train = [f for k in (0, 1) for f in read_split(out / str(k) / "train.txt")[0]]
    held = [f for k in (0, 1) for name in ("valid", "test") for f in read_split(out / str(k) / f"{name}.txt")[0]]
    degree: dict[str, int] = {}
    for h, _, t in train:
        degree[h] = degree.get(h, 0) + 1
        degree[t] = degree.get(t, 0) + 1
    people = sorted(e for e, d in degree.items() if e.startswith("person/") and 2 <= d <= 8)
    forgotten = rng.sample(people, FORGOTTEN)
    removed = set(rng.sample(train, len(train) // 10))
    removed |= {f for f in train + held if f[0] in forgotten or f[2] in forgotten}
    for name in ("train", "valid", "test"):
        file = out / "2" / f"{name}.txt"
        kept = [f for f in read_split(file)[0] if f[0] not in forgotten and f[2] not in forgotten]
        file.write_text("".join("\t".join(f) + "\n" for f in kept))
    (out / "2" / "removed.txt").write_text("".join("\t".join(f) + "\n" for f in sorted(removed)))
    return out, forgotten


def unlearning_config(enabled: bool) -> RunConfig:
    base = fast_config("lkge")
    return base.model_copy(update={"lkge": LKGEConfig(unlearning=UnlearningConfig(enabled=enabled))})


@pytest.fixture(scope="module")
def retracted(example_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("retraction")
    data, forgotten = with_retractions(example_data, root / "data")
    runs = {}
    for enabled in (True, False):
        out = root / ("unlearn" if enabled else "without")
        LifelongRun(data=data, out=out, config=unlearning_config(enabled), show_progress=False).run()
        runs[enabled] = out
    return {"data": data, "forgotten": forgotten, "runs": runs, "kg": GrowingKG.load(data), "root": root}


def forgetting_mrr(run: Path, kg: GrowingKG, *, upto: int = 2) -> float:
    """Filtered MRR on the retracted facts the model trained on (facts of retired entities left out)."""
    model, _ = load_model_checkpoint(RunPaths(run).snapshot_checkpoint(upto))
    gone = trained_removals(kg.retracted_facts(upto), torch.cat([s.train for s in kg.snapshots]))
    retired = kg.retired_entities(upto)
    gone = gone[~(torch.isin(gone[:, 0], retired) | torch.isin(gone[:, 2], retired))]
    ranks = filtered_ranks(
        score_fn=model.score_fn(),
        triples=gone,
        known=kg.known_facts(upto),
        num_candidates=kg.snapshots[upto].num_entities,
    )
    return RankingMetrics.from_ranks(ranks.realistic).mrr


# --------------------------------------------------------------------------------------------------- engine


def test_evaluation_drops_retracted_facts_from_test_sets_and_filters() -> None:
    empty = torch.empty((0, 3), dtype=torch.long)
    first = Snapshot(
        index=0,
        train=torch.tensor([[0, 0, 1]]),
        valid=empty,
        test=torch.tensor([[0, 0, 2], [1, 0, 2]]),
        num_entities=3,
        num_relations=1,
        content_hash="a",
    )
    second = Snapshot(
        index=1, train=empty, valid=empty, test=empty, num_entities=3, num_relations=1, content_hash="b",
        removed=torch.tensor([[1, 0, 2], [0, 0, 1]]),
    )  # fmt: skip

    def score(entities: torch.Tensor, relations: torch.Tensor, n: int) -> torch.Tensor:
        return torch.arange(n, dtype=torch.float).repeat(len(entities), 1) * 0 + torch.tensor([0.0, 2.0, 1.0])

    before = evaluate_stream(score_fn=score, snapshots=[first], upto=0)
    after = evaluate_stream(score_fn=score, snapshots=[first, second], upto=1)
    assert before.per_test_set[0][1].num_queries == 4 and after.per_test_set[0][1].num_queries == 2
    # (0, r, ?) -> 2: entity 1 scores higher; filtered while (0, r, 1) is known, a competitor once it is retracted
    assert before.per_test_set[0][1].mrr > after.per_test_set[0][1].mrr


def test_unlearning_forgets_retracted_facts_better_than_no_unlearning(retracted: dict) -> None:
    kg = retracted["kg"]
    with_unlearning = forgetting_mrr(retracted["runs"][True], kg)
    without = forgetting_mrr(retracted["runs"][False], kg)
    assert with_unlearning < without - 0.05, (with_unlearning, without)


def test_unlearning_keeps_the_retained_facts(retracted: dict) -> None:
    stream = [
        LifelongRun(data=retracted["data"], out=run, config=unlearning_config(enabled), show_progress=False).run()[
            "snapshots"
        ][-1]
        for enabled, run in retracted["runs"].items()
    ]
    assert abs(stream[0]["stream"]["mrr"] - stream[1]["stream"]["mrr"]) < 0.05
    entry = stream[0]
    assert entry["retracted"] == retracted["kg"].snapshots[2].removed.shape[0]
    assert entry["unlearning"]["forgotten"] > 0 and entry["unlearning"]["retired"] == FORGOTTEN
    assert entry["unlearning"]["forget_distance_after"] > entry["unlearning"]["forget_distance_before"]
    assert "unlearning" not in stream[1]


def test_unlearning_stops_once_the_forget_targets_are_reached(retracted: dict) -> None:
    from evergraph.kg.engine.model import doubled_triples
    from evergraph.kg.engine.snapshot import retained
    from evergraph.kg.engine.unlearning import _targets, unlearn

    kg = retracted["kg"]
    forget = trained_removals(kg.snapshots[2].removed, kg.train_facts(1))
    unseen = torch.cat([retained(kg.snapshots, index=j, upto=2, split="valid") for j in range(2)])
    outcomes, mrr = {}, {}
    for stop_share in (None, 0.0, 0.05):
        model, _ = load_model_checkpoint(RunPaths(retracted["runs"][True]).snapshot_checkpoint(1))
        n, m = model.num_entities, model.num_relations
        known = kg.known_facts(2)
        known = known[(known[:, 0] < n) & (known[:, 2] < n)]
        if stop_share is None:  # the model before unlearning
            ranks = filtered_ranks(score_fn=model.score_fn(), triples=forget, known=known, num_candidates=n)
            mrr[None] = RankingMetrics.from_ranks(ranks.realistic).mrr
            continue
        retain = kg.train_facts(2)
        retain = retain[(retain[:, 0] < n) & (retain[:, 2] < n) & (retain[:, 1] < m)]
        targets = _targets(model, doubled_triples(forget), doubled_triples(unseen))
        outcomes[stop_share] = unlearn(
            model=model, forget=forget, retain=retain, unseen=unseen, retired=torch.empty(0, dtype=torch.long),
            steps=100, lr=1e-2, retain_samples=5000, negatives=2, generator=torch.Generator().manual_seed(0),
            stop_share=stop_share,
        )  # fmt: skip
        ranks = filtered_ranks(score_fn=model.score_fn(), triples=forget, known=known, num_candidates=n)
        mrr[stop_share] = RankingMetrics.from_ranks(ranks.realistic).mrr
        # pushed at least to the targets on average
        assert float(model.distance(doubled_triples(forget)).detach().mean()) >= float(targets.mean())
    assert outcomes[0.0].steps == 100 and 0 < outcomes[0.05].steps < 50
    # stopping once the mean reaches the targets' mean overshoots less than pushing on every step ...
    early, full = outcomes[0.05], outcomes[0.0]
    assert early.forget_distance_after - early.target_distance < full.forget_distance_after - full.target_distance
    assert mrr[0.05] >= mrr[0.0] - 1e-9, mrr
    # ... and still forgets: the facts rank far below where the model had them
    assert mrr[0.05] < mrr[None] - 0.1, mrr


def test_retired_entities_get_fresh_rows(retracted: dict) -> None:
    kg = retracted["kg"]
    retired = kg.retired_entities(2)
    assert sorted(kg.entities.label(i) for i in retired.tolist()) == sorted(retracted["forgotten"])
    before, _ = load_model_checkpoint(RunPaths(retracted["runs"][True]).snapshot_checkpoint(1))
    after, _ = load_model_checkpoint(RunPaths(retracted["runs"][True]).snapshot_checkpoint(2))
    kept, _ = load_model_checkpoint(RunPaths(retracted["runs"][False]).snapshot_checkpoint(2))
    drift = (after.entity[retired] - before.entity[retired]).norm(dim=1)
    stay = (kept.entity[retired] - before.entity[retired]).norm(dim=1)
    assert bool((drift > stay).all())


def test_default_unlearning_keeps_the_checksum_of_earlier_runs() -> None:
    import hashlib
    import json

    config = RunConfig()
    data = config.model_dump()
    data["train"].pop("device")
    data["lkge"].pop("unlearning")
    data.pop("evaluation", None)  # default evaluation options keep older checksums too
    data["train"].pop("optimizer")  # so does the default dense optimizer (kg.engine.sparse)
    assert config.checksum() == hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    changed = RunConfig(lkge=LKGEConfig(unlearning=UnlearningConfig(enabled=False)))
    assert changed.checksum() != config.checksum()


# ----------------------------------------------------------------------------------------------- knowledge


@pytest.fixture(scope="module")
def knowledge(retracted: dict) -> Knowledge:
    dest = retracted["root"] / "bundle"
    write_bundle(run_dir=retracted["runs"][True], snapshot=2, dest=dest, version="1")
    return Knowledge.load(dest)


def test_the_bundle_holds_no_retracted_fact(retracted: dict, knowledge: Knowledge) -> None:
    bundle: Bundle = knowledge.bundle
    gone = retracted["kg"].retracted_facts(2)
    assert len(gone) > 0 and bundle.retracted is not None and len(bundle.retracted) == len(gone)
    held = set(fact_keys(bundle.facts.facts[:, :3]).tolist())
    assert not held & set(fact_keys(gone).tolist())
    assert sorted(bundle.entities.label(i) for i in bundle.retired.tolist()) == sorted(retracted["forgotten"])


def test_facts_and_predictions_never_offer_a_retracted_fact(retracted: dict, knowledge: Knowledge) -> None:
    bundle = knowledge.bundle
    retired = set(bundle.retired.tolist())
    checked = 0
    for h, r, t in retracted["kg"].retracted_facts(2).tolist():
        if h in retired or t in retired:
            continue
        head, relation = bundle.entities.label(h), bundle.relations.label(r)
        listed = knowledge.facts(head, limit=100)
        assert all((f.head.id, f.relation.id, f.tail.id) != (h, r, t) for f in listed.facts)
        predicted = knowledge.predict(head, relation, k=100)
        answers = {p.answer.id for p in predicted.predictions}
        assert t not in answers and not answers & retired
        checked += 1
        if checked == 15:
            break
    assert checked == 15


def test_retired_entities_are_not_linked_predicted_or_similar(retracted: dict, knowledge: Knowledge) -> None:
    bundle = knowledge.bundle
    for label in retracted["forgotten"]:
        name = bundle.entity_names.get(label, label)
        result = knowledge.guide(f"Where was {name} born?")
        assert all(item.id not in bundle.retired.tolist() for item in result.entities)
        entity = bundle.entities.id(label)
        assert knowledge.predict(label, "born_in").predictions == []
        assert bundle.entities.id(label) == entity  # the id stays
    some = next(
        label for label in bundle.entities.labels if label.startswith("person/") and label not in retracted["forgotten"]
    )
    neighbours = knowledge.similar(some, k=100).neighbours
    assert neighbours and not {n.entity.id for n in neighbours} & set(bundle.retired.tolist())


def test_the_guide_never_cites_a_retracted_fact(retracted: dict, knowledge: Knowledge) -> None:
    from evergraph.kg.knowledge.guide import relation_phrase

    bundle = knowledge.bundle
    gone = set(fact_keys(retracted["kg"].retracted_facts(2)).tolist())
    cited = 0
    for h, r, _ in retracted["kg"].retracted_facts(2).tolist()[:60]:
        name = bundle.entity_names.get(bundle.entities.label(h), bundle.entities.label(h))
        relation = bundle.relations.label(r)
        result = knowledge.guide(
            f"What is the {relation_phrase(relation, bundle.relation_names.get(relation))} of {name}?"
        )
        for fact in result.facts:
            both = torch.tensor([[fact.head.id, fact.relation.id, fact.tail.id]])  # facts are in base orientation
            assert not set(fact_keys(both).tolist()) & gone, fact
            cited += 1
    assert cited > 0
