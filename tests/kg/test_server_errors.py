"""The server blames the client only for the client's input: our input errors are 4xx, anything else is a 500
with its traceback logged (a bug inside must not look like a bad request)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from evergraph.kg.errors import InvalidQueryError, QuestionTooLongError
from evergraph.kg.service.server import create_app


class _Raising:
    """Stands in for a Knowledge whose every query raises ``error``."""

    version = "7"

    def __init__(self, error: Exception) -> None:
        self.error = error

    def similar(self, entity: str, *, k: int) -> Any:
        raise self.error

    def guide(self, question: str) -> Any:
        raise self.error


def _client(error: Exception) -> TestClient:
    served = _Raising(error)
    return TestClient(create_app(lambda: served), raise_server_exceptions=False)  # type: ignore[arg-type,return-value]


def test_an_invalid_query_is_422_with_its_reason() -> None:
    response = _client(InvalidQueryError("k must be between 1 and 100, got 0")).get("/similar?entity=Paris&k=5")
    assert response.status_code == 422
    assert response.json()["detail"] == "k must be between 1 and 100, got 0"


def test_a_question_too_long_for_the_linker_is_413() -> None:
    response = _client(QuestionTooLongError("the question has 9000 characters")).post("/guide", json={"question": "x"})
    assert response.status_code == 413 and "9000" in response.json()["detail"]


@pytest.mark.parametrize("bug", [ValueError("shapes do not match"), KeyError("entity"), RuntimeError("boom")])
def test_an_internal_error_is_500_and_logged(bug: Exception, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="evergraph.kg.service.server"):
        response = _client(bug).get("/similar?entity=Paris&k=5")
    assert response.status_code == 500
    assert "shapes do not match" not in response.text  # internals are not sent to the client
    logged = [r for r in caplog.records if r.name == "evergraph.kg.service.server"]
    assert logged and logged[0].exc_info is not None and logged[0].exc_info[1] is bug
    assert "/similar" in logged[0].getMessage()
