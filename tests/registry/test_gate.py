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
