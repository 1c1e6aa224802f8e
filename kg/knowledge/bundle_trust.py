"""What a bundle carries so that trusting it costs nothing at query time (issue 10): its mined rules
(``rules.json``, :mod:`evergraph.kg.knowledge.rules`) and its plausibility filter (``plausibility.json``,
:mod:`evergraph.kg.knowledge.plausibility`), both made while the bundle is written and listed in its manifest.

Pass :data:`TRUST_FILES` as ``extras`` of :func:`evergraph.kg.store.bundle_writer.write_bundle`. A bundle written
without them still works: the rules are mined on the first explanation and the filter is fitted on the first check.
"""

from __future__ import annotations

import logging
import time

from evergraph.kg.errors import PlausibilityError
from evergraph.kg.knowledge.plausibility import PLAUSIBILITY_FILE, fit_plausibility
from evergraph.kg.knowledge.rules import RULES_FILE, mine_rules
from evergraph.kg.store.bundle_writer import BundleParts

logger = logging.getLogger(__name__)

__all__ = [
    "CHECK_FILES",
    "TRUST_FILES",
    "write_plausibility_file",
    "write_rules_file",
    "write_trust_files",
]


def write_rules_file(parts: BundleParts) -> None:
    """Mine the rules of ``parts.facts`` into the bundle being written."""
    started = time.perf_counter()
    mine_rules(parts.facts).save(parts.directory / RULES_FILE)
    logger.info("bundle of version %s: rules mined in %.1fs", parts.version, time.perf_counter() - started)


def write_plausibility_file(parts: BundleParts) -> None:
    """Fit the plausibility filter of ``parts.model`` on ``parts.valid`` into the bundle being written (a filter
    that cannot be fitted, e.g. no validation facts, is left out and logged: the check then fits it when asked)."""
    started = time.perf_counter()
    try:
        fitted = fit_plausibility(model=parts.model, facts=parts.facts, valid=parts.valid, version=parts.version)
        fitted.save(parts.directory / PLAUSIBILITY_FILE)
    except PlausibilityError as error:
        logger.warning("bundle of version %s: no plausibility filter (%s)", parts.version, error)
        return
    logger.info(
        "bundle of version %s: plausibility filter fitted in %.1fs", parts.version, time.perf_counter() - started
    )


def write_trust_files(parts: BundleParts) -> None:
    """Both: the mined rules and the plausibility filter."""
    write_rules_file(parts)
    write_plausibility_file(parts)


TRUST_FILES = (write_rules_file, write_plausibility_file)
"""The ``extras`` of a bundle the pipeline serves."""
CHECK_FILES = (write_plausibility_file,)
"""The ``extras`` of a bundle superseded within the same pipeline run: the next snapshot's check needs its filter;
its rules are mined on the first explanation, should anyone ask one of a bundle served only for moments."""
