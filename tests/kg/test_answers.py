"""The kind of answer a question asks for (a ranking signal of the guide)."""

import pytest

from evergraph.kg.knowledge.answers import expected_kind


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Who directed Inception?", "person"),
        ("whose wife was born in Paris", "person"),
        ("Where did Barack Obama go to college?", "place"),
        ("In which country was Jeremy Irons born?", "place"),
        ("what city is the louvre in", "place"),
        ("When did the Berlin Wall fall?", "date"),
        ("What year was Titanic released?", "date"),
        ("What currency does Japan use?", None),
        ("What is the profession of Jeremy Irons?", None),
    ],
)
def test_expected_kind(question: str, kind: str | None) -> None:
    assert expected_kind(question) == kind
