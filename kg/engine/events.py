"""The events a person running Evergraph cares about, one line each: a snapshot learned, a version promoted, a
run's outcome. They are INFO records of the ``evergraph.events`` logger; the ``evergraph`` command shows them
(and warnings) on the console and everything else only with ``-v``. Inside Prefect runs they also reach the
run's logs in the UI, like every ``evergraph`` logger."""

from __future__ import annotations

import logging

EVENTS_LOGGER = "evergraph.events"
"""Name of the events logger (children such as ``evergraph.events.pipeline`` count too)."""

events = logging.getLogger(EVENTS_LOGGER)
"""Log one line per event with ``events.info(...)``."""


def is_event(record: logging.LogRecord) -> bool:
    """Whether ``record`` is an event (it comes from :data:`EVENTS_LOGGER` or one of its children)."""
    return record.name == EVENTS_LOGGER or record.name.startswith(EVENTS_LOGGER + ".")
