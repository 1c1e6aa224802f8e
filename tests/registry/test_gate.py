import pytest

from evergraph.registry import decide


def entry(snapshot: int, *mrrs: float) -> dict:
    return {"snapshot": snapshot, "per_test_set": [{"snapshot": j, "mrr": m} for j, m in enumerate(mrrs)]}


def test_first_version_is_promoted():
    decision = decide(new_entry=entry(0, 0.3), champion_entry=None, tolerance=0.01)
    assert decision.promote
    assert "first version" in decision.reasons[0]


def test_forgetting_beyond_tolerance_fails_and_names_the_numbers():
    # earlier sets 0, 1: new mean 0.25, champion mean 0.30; the new test set 2 is not compared
    decision = decide(new_entry=entry(2, 0.2, 0.3, 0.9), champion_entry=entry(1, 0.3, 0.3), tolerance=0.01)
    assert not decision.promote
    assert decision.earlier_test_sets == [0, 1]
    assert "forgetting: failed" in decision.reasons[0]
    assert "0.2500" in decision.reasons[0] and "0.3000" in decision.reasons[0] and "0.0100" in decision.reasons[0]
    assert decision.numbers["new_earlier_mrr"] == pytest.approx(0.25)


def test_a_drop_within_tolerance_passes_and_a_missing_new_set_rule_is_skipped():
    decision = decide(new_entry=entry(2, 0.295, 0.3, 0.1), champion_entry=entry(1, 0.3, 0.3), tolerance=0.01)
    assert decision.promote
    assert "forgetting: passed" in decision.reasons[0]
    assert "new knowledge: skipped" in decision.reasons[1]


def test_worse_on_the_new_test_set_fails_without_tolerance():
    decision = decide(
        new_entry=entry(2, 0.4, 0.4, 0.3),
        champion_entry=entry(1, 0.3, 0.3),
        new_on_new=0.299,
        champion_on_new=0.3,
        tolerance=0.5,
    )
    assert not decision.promote
    assert "forgetting: passed" in decision.reasons[0]
    assert "new knowledge: failed" in decision.reasons[1] and "0.2990" in decision.reasons[1]


def test_markdown_has_the_verdict_and_a_table():
    decision = decide(new_entry=entry(1, 0.1, 0.2), champion_entry=entry(0, 0.3), tolerance=0.01)
    text = decision.to_markdown()
    assert "KEEP CHAMPION" in text
    assert "| mean MRR on earlier test sets (0) | 0.1000 | 0.3000 |" in text
    # a decision survives JSON (Prefect persists task results)
    assert type(decision).model_validate_json(decision.model_dump_json()) == decision


def test_forgetting_on_equal_terms_replaces_the_recorded_numbers():
    # recorded: the new version's MRR on test set 0 looks 0.1 lower (it ranks among more entities) ...
    new, champion = entry(2, 0.2, 0.3, 0.9), entry(1, 0.3, 0.3)
    assert not decide(new_entry=new, champion_entry=champion, tolerance=0.01).promote
    # ... ranked against the same candidates it forgot nothing
    decision = decide(
        new_entry=new,
        champion_entry=champion,
        new_earlier={0: 0.31, 1: 0.30},
        champion_earlier={0: 0.30, 1: 0.30},
        tolerance=0.01,
    )
    assert decision.promote and decision.earlier_test_sets == [0, 1]
    assert "champion's entities" in decision.reasons[0] and "0.3050" in decision.reasons[0]
    forgot = decide(
        new_entry=new, champion_entry=champion, new_earlier={0: 0.2}, champion_earlier={0: 0.3}, tolerance=0.01
    )
    assert not forgot.promote and "forgetting: failed" in forgot.reasons[0]


# -- fail closed (issue 13) ------------------------------------------------------------------------------------


def test_a_gate_that_compares_nothing_does_not_promote():
    # a new lineage's snapshot 0 against a 5-snapshot champion: no shared earlier test set, no new-set MRRs
    decision = decide(new_entry=entry(0, 0.08), champion_entry=entry(4, 0.3, 0.3, 0.3, 0.3, 0.24), tolerance=0.05)
    assert not decision.promote and not decision.forced
    assert "forgetting: skipped" in decision.reasons[0] and "new knowledge: skipped" in decision.reasons[1]
    assert "undecided" in decision.reasons[2] and "--promote-anyway" in decision.reasons[2]
    assert "KEEP CHAMPION" in decision.to_markdown()


def test_a_gate_told_it_cannot_compare_does_not_promote_whatever_the_numbers():
    decision = decide(
        new_entry=entry(3, 0.9, 0.9, 0.9, 0.9),
        champion_entry=entry(4, 0.1, 0.1, 0.1, 0.1, 0.1),
        new_on_new=0.9,
        champion_on_new=0.1,
        tolerance=0.05,
        cannot_compare="the champion knows 300 entities, the new version only 200",
    )
    assert not decision.promote
    assert decision.reasons == [
        "not comparable: the champion knows 300 entities, the new version only 200; a gate that cannot compare "
        "does not promote (run again with --promote-anyway to promote it regardless)"
    ]
    assert decision.champion_snapshot == 4


def test_promote_anyway_forces_a_promotion_and_records_it():
    forced = decide(
        new_entry=entry(0, 0.08),
        champion_entry=entry(4, 0.3),
        tolerance=0.05,
        cannot_compare="other lineage",
        promote_anyway=True,
    )
    assert forced.promote and forced.forced
    assert forced.reasons[0].startswith("not comparable: other lineage")
    assert "forced: promoted with --promote-anyway" in forced.reasons[-1]
    assert "FORCED" in forced.to_markdown() and "--promote-anyway" in forced.to_markdown()
    # a failing comparison is forced the same way; a passing one is not marked forced
    failed = decide(new_entry=entry(2, 0.1, 0.1, 0.5), champion_entry=entry(1, 0.3, 0.3), tolerance=0.01)
    assert not failed.promote
    assert decide(
        new_entry=entry(2, 0.1, 0.1, 0.5), champion_entry=entry(1, 0.3, 0.3), tolerance=0.01, promote_anyway=True
    ).forced
    passed = decide(
        new_entry=entry(2, 0.3, 0.3, 0.5), champion_entry=entry(1, 0.3, 0.3), tolerance=0.01, promote_anyway=True
    )
    assert passed.promote and not passed.forced


def test_an_interrupted_promotion_is_completed_not_judged_against_itself():
    from evergraph.registry.gate import interrupted_promotion

    # the pointer was switched to version 2, then the run died before the alias moved from version 1
    decision = interrupted_promotion(version="2", pointer_version="2", champion_version="1", new_snapshot=1)
    assert decision is not None and decision.promote
    assert "interrupted promotion completed" in decision.reasons[0] and "version 1" in decision.reasons[0]
    assert set(decision.numbers.values()) == {None}  # no comparison of the version with itself as evidence
    first = interrupted_promotion(version="1", pointer_version="1", champion_version=None, new_snapshot=0)
    assert first is not None and "names no version" in first.reasons[0]
    already = interrupted_promotion(version="2", pointer_version="2", champion_version="2", new_snapshot=1)
    assert already is not None and "already champion" in already.reasons[0]
    # the ordinary cases are judged by the gate
    assert interrupted_promotion(version="3", pointer_version="2", champion_version="2", new_snapshot=2) is None
    assert interrupted_promotion(version="1", pointer_version=None, champion_version=None, new_snapshot=0) is None
