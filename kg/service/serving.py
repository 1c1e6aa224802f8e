"""Serve the champion and follow it: load a new champion beside the old one, then swap atomically.

A :class:`ChampionWatcher` holds the :class:`evergraph.kg.knowledge.knowledge.Knowledge` of the bundle
``HOME/champion.json`` names. Promotion and rollback switch that pointer atomically (:func:`kg.switch_pointer`); the
watcher notices (it polls the pointer every ``poll_interval`` seconds in a background thread, or when
:meth:`ChampionWatcher.refresh` is called), loads and verifies the new bundle *while the old one keeps serving*, and
then replaces its reference in one assignment. A request takes the reference once (:meth:`ChampionWatcher.current`) and
uses only that object, so during a swap every request is answered, each by exactly one version. A bundle that fails to
load is logged and skipped (the old champion keeps serving) until the pointer changes again.

Serving only reads the pointer and bundles; training and promotion run elsewhere and never wait for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evergraph.kg.errors import BundleError
from evergraph.kg.knowledge.knowledge import Knowledge
from evergraph.kg.store.bundle import read_pointer
from evergraph.kg.store.home import EvergraphHome

logger = logging.getLogger(__name__)

__all__ = ["ChampionWatcher", "warm_up"]

Loader = Callable[[Path], Knowledge]


def warm_up(knowledge: Knowledge, *, questions: int = 3) -> None:
    """Do now what the first questions would otherwise wait for: the rules the guide cites reasons from (mined from
    the known facts when the bundle does not carry them, as a bundle written before rules were: about a minute on
    FB15k-237, which the first request would spend, in every worker), then the indexes built on first use, by
    guiding ``questions`` (default 3) questions made from known facts. A failure here is logged, not raised."""
    from evergraph.kg.knowledge.guide import relation_phrase
    from evergraph.kg.knowledge.rules import bundle_rules

    started = time.perf_counter()
    bundle = knowledge.bundle
    try:
        bundle_rules(bundle)
        entities, relations = bundle.entities.labels, bundle.relations.labels
        for head, relation in bundle.facts.facts[:questions, :2].tolist():
            label = relations[relation]
            name = bundle.entity_names.get(entities[head], entities[head])
            knowledge.guide(f"What is the {relation_phrase(label, bundle.relation_names.get(label))} of {name}?")
    except Exception as error:  # noqa: BLE001 - warming is an optimisation; the request path reports real errors
        logger.warning("warming up version %s failed (%s); the first requests will be slower", knowledge.version, error)
        return
    logger.info("version %s warmed up in %.1fs", knowledge.version, time.perf_counter() - started)


class ChampionWatcher:
    """The champion of ``home`` (an :class:`kg.EvergraphHome` or its directory), kept current.

    ``loader`` (default :meth:`Knowledge.load` with ``knowledge_options``) turns a bundle directory into a
    :class:`Knowledge`; ``poll_interval`` (default 1.0 s) is how often :meth:`start`'s thread reads the pointer.
    The first champion is loaded in the constructor: with no champion yet, a :class:`kg.BundleError` says to run
    the pipeline first.
    """

    def __init__(
        self,
        home: EvergraphHome | Path | str | None = None,
        *,
        loader: Loader | None = None,
        poll_interval: float = 1.0,
        **knowledge_options: Any,
    ) -> None:
        from evergraph.kg.knowledge.llm import ChatClient, ChatConfig

        self.home = home if isinstance(home, EvergraphHome) else EvergraphHome.resolve(home)
        self.poll_interval = poll_interval
        if isinstance(knowledge_options.get("chat"), ChatConfig):  # one LLM client for every version served
            knowledge_options["chat"] = ChatClient(knowledge_options["chat"])
        self._loader: Loader = loader or (lambda path: Knowledge.load(path, **knowledge_options))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed: tuple[str, str] | None = None
        self.swaps = 0
        pointer = read_pointer(self.home.champion_pointer)
        if pointer is None:
            raise BundleError(
                f"no champion yet ({self.home.champion_pointer} does not exist): run `evergraph run` first"
            )
        self._key = self._pointer_key(pointer)
        self._current = self._load(pointer)

    def __repr__(self) -> str:
        return f"ChampionWatcher(home={str(self.home.root)!r}, version={self.current().version!r})"

    @staticmethod
    def _pointer_key(pointer: dict[str, Any]) -> tuple[str, str]:
        return (str(pointer["version"]), str(pointer["bundle"]))

    def _load(self, pointer: dict[str, Any]) -> Knowledge:
        path = self.home.champion_pointer.parent / str(pointer["bundle"])
        knowledge = self._loader(path)
        if knowledge.version != str(pointer["version"]):
            raise BundleError(
                f"{self.home.champion_pointer} says version {pointer['version']!r} but {path} holds "
                f"{knowledge.version!r}; promote again"
            )
        warm_up(knowledge)
        return knowledge

    def current(self) -> Knowledge:
        """The champion's knowledge now; keep using this object for the whole request."""
        return self._current

    def refresh(self) -> bool:
        """Read the pointer; when it names another bundle, load it and swap. Returns whether it swapped.

        Errors while loading are logged, not raised: the current champion keeps serving.
        """
        with self._lock:
            try:
                pointer = read_pointer(self.home.champion_pointer)
            except BundleError as error:
                logger.error("cannot read the champion pointer (still serving %s): %s", self._current.version, error)
                return False
            if pointer is None:
                return False
            key = self._pointer_key(pointer)
            if key == self._key or key == self._failed:
                return False
            try:
                knowledge = self._load(pointer)
            except Exception as error:  # a bad bundle must not take serving down
                self._failed = key
                logger.error(
                    "cannot load champion %s from %s (still serving %s): %s",
                    key[0],
                    key[1],
                    self._current.version,
                    error,
                )
                return False
            previous = self._current
            self._current = knowledge  # the swap: one reference assignment
            self._key, self._failed = key, None
            self.swaps += 1
            logger.info("champion swapped: version %s -> %s", previous.version, knowledge.version)
            return True

    def start(self) -> ChampionWatcher:
        """Poll the pointer every ``poll_interval`` seconds in a daemon thread (idempotent); returns self."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="evergraph-champion-watcher", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.poll_interval):
            self.refresh()

    def stop(self) -> None:
        """Stop polling (the current champion stays loaded)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.poll_interval))
            self._thread = None
