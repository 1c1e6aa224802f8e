"""`/docs` and `/redoc` work offline: every file they load is served by the knowledge server itself."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from evergraph.kg.service.server import create_app


@pytest.fixture(scope="module")
def client() -> TestClient:
    def no_knowledge() -> None:
        raise AssertionError("the docs pages must not need a model")

    return TestClient(create_app(no_knowledge))  # type: ignore[arg-type]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_no_external_host(client: TestClient, page: str) -> None:
    html = client.get(page).text
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.IGNORECASE), html
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert any(a.endswith(".js") for a in assets)
    for asset in assets:
        assert asset.startswith("/"), asset
        response = client.get(asset)
        assert response.status_code == 200 and response.content, asset


def test_swagger_ui_calls_no_validator(client: TestClient) -> None:
    assert '"validatorUrl": null' in client.get("/docs").text
