"""Everything here runs against the session's temporary Prefect API."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _prefect(prefect_harness: None) -> None:
    """Requests the session-wide harness (tests/conftest.py)."""
