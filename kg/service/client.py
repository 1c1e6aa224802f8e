"""``KnowledgeClient``: one interface to query knowledge, in-process or over HTTP.

::

    from evergraph.kg import KnowledgeClient

    with KnowledgeClient.local(home=".evergraph") as client:      # the champion bundle, followed on promotion
        print(client.guide("Where was Jeremy Irons born?").context)
    with KnowledgeClient.remote("http://127.0.0.1:8000", token=None) as client:   # `evergraph serve`
        print(client.facts("Jeremy Irons").facts[0].text)

Both backends return the same typed results (:mod:`evergraph.kg.knowledge.schemas`). Unknown names are answers with
``found=False``; a problem the caller must fix (a wrong token, a question too long, no LLM configured) raises
:class:`KnowledgeClientError` with the server's explanation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
from pydantic import BaseModel

from evergraph.kg.errors import KnowledgeClientError
from evergraph.kg.knowledge.explain_schemas import ExplainResult
from evergraph.kg.knowledge.schemas import (
    Answer,
    EntitySearch,
    FactsResult,
    GuideResult,
    Predictions,
    SimilarResult,
    VersionInfo,
)
from evergraph.kg.settings import load_settings
from evergraph.kg.store.home import EvergraphHome

__all__ = ["HTTPBackend", "KnowledgeBackend", "KnowledgeClient", "KnowledgeClientError", "LocalBackend"]

T = TypeVar("T", bound=BaseModel)


class KnowledgeBackend(Protocol):
    """What a :class:`KnowledgeClient` backend answers (each returns a :mod:`evergraph.kg.knowledge.schemas` result)."""

    def version(self) -> VersionInfo: ...
    def entity(self, name: str, *, k: int) -> EntitySearch: ...
    def facts(self, entity: str, *, limit: int) -> FactsResult: ...
    def predict(self, head: str, relation: str, *, k: int, direction: str) -> Predictions: ...
    def similar(self, entity: str, *, k: int) -> SimilarResult: ...
    def explain(self, head: str, relation: str, tail: str) -> ExplainResult: ...
    def guide(self, question: str) -> GuideResult: ...
    def ask(self, question: str) -> Answer: ...
    def close(self) -> None: ...


class LocalBackend:
    """In-process: a :class:`evergraph.kg.service.serving.ChampionWatcher` over a home (following the champion), or one
    fixed bundle. Every call uses one :class:`evergraph.kg.knowledge.knowledge.Knowledge` object, so one version."""

    def __init__(self, current: Any, *, closer: Any = None) -> None:
        self._current = current
        self._closer = closer

    def _k(self) -> Any:
        return self._current()

    def version(self) -> VersionInfo:
        return self._k().info()

    def entity(self, name: str, *, k: int) -> EntitySearch:
        return self._k().entity(name, k=k)

    def facts(self, entity: str, *, limit: int) -> FactsResult:
        return self._k().facts(entity, limit=limit)

    def predict(self, head: str, relation: str, *, k: int, direction: str) -> Predictions:
        return self._k().predict(head, relation, k=k, direction=direction)

    def similar(self, entity: str, *, k: int) -> SimilarResult:
        return self._k().similar(entity, k=k)

    def explain(self, head: str, relation: str, tail: str) -> ExplainResult:
        return self._k().explain(head, relation, tail)

    def guide(self, question: str) -> GuideResult:
        return self._k().guide(question)

    def ask(self, question: str) -> Answer:
        return self._k().ask(question)

    def close(self) -> None:
        if self._closer is not None:
            self._closer()


class HTTPBackend:
    """Over HTTP to ``evergraph serve`` at ``url``, with an optional bearer ``token`` and ``timeout`` (default
    30 s per request; ``ask`` waits on the LLM, so give it room). ``transport`` is for tests."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)

    def _call(self, kind: type[T], method: str, path: str, **kwargs: Any) -> T:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise KnowledgeClientError(
                f"cannot reach the Evergraph server at {self.url} ({error}); is `evergraph serve` running there?"
            ) from None
        if response.status_code == 401:
            raise KnowledgeClientError(
                f"{self.url} needs a bearer token (or this one is wrong): KnowledgeClient.remote(url, token=...)",
                status=401,
            )
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise KnowledgeClientError(
                f"{method} {path}: {response.status_code}: {detail}", status=response.status_code
            )
        return kind.model_validate(response.json())

    def version(self) -> VersionInfo:
        return self._call(VersionInfo, "GET", "/version")

    def entity(self, name: str, *, k: int) -> EntitySearch:
        return self._call(EntitySearch, "GET", "/entities", params={"name": name, "k": k})

    def facts(self, entity: str, *, limit: int) -> FactsResult:
        return self._call(FactsResult, "GET", "/facts", params={"entity": entity, "limit": limit})

    def predict(self, head: str, relation: str, *, k: int, direction: str) -> Predictions:
        params = {"head": head, "relation": relation, "k": k, "direction": direction}
        return self._call(Predictions, "GET", "/predict", params=params)

    def similar(self, entity: str, *, k: int) -> SimilarResult:
        return self._call(SimilarResult, "GET", "/similar", params={"entity": entity, "k": k})

    def explain(self, head: str, relation: str, tail: str) -> ExplainResult:
        params = {"head": head, "relation": relation, "tail": tail}
        return self._call(ExplainResult, "GET", "/explain", params=params)

    def guide(self, question: str) -> GuideResult:
        return self._call(GuideResult, "POST", "/guide", json={"question": question})

    def ask(self, question: str) -> Answer:
        return self._call(Answer, "POST", "/ask", json={"question": question})

    def close(self) -> None:
        self._http.close()


class KnowledgeClient:
    """Query knowledge through a backend; make one with :meth:`local` or :meth:`remote`. Use it as a context
    manager (or call :meth:`close`)."""

    def __init__(self, backend: KnowledgeBackend) -> None:
        self.backend = backend

    @classmethod
    def local(
        cls,
        home: EvergraphHome | Path | str | None = None,
        *,
        bundle: Path | str | None = None,
        watch: bool = True,
        poll_interval: float = 1.0,
        **knowledge_options: Any,
    ) -> KnowledgeClient:
        """In-process over the champion of ``home`` (default: ``$EVERGRAPH_HOME`` or ``./.evergraph``), followed
        when it moves (``watch``, default on, polling every ``poll_interval`` seconds), or over one fixed
        ``bundle`` directory. ``knowledge_options`` go to :class:`evergraph.kg.knowledge.knowledge.Knowledge`
        (``guide_config``, ``encoder``, ``chat``); without ``chat``, ``ask`` uses the endpoint named by
        ``EVERGRAPH_LLM_BASE_URL`` and ``EVERGRAPH_LLM_MODEL`` when they are set."""
        from evergraph.kg.knowledge.knowledge import Knowledge
        from evergraph.kg.service.serving import ChampionWatcher

        if "chat" not in knowledge_options and load_settings().llm_base_url:
            from evergraph.kg.knowledge.llm import ChatConfig

            knowledge_options["chat"] = ChatConfig.from_env()
        if bundle is not None:
            knowledge = Knowledge.load(bundle, **knowledge_options)
            return cls(LocalBackend(lambda: knowledge, closer=knowledge.close))
        watcher = ChampionWatcher(home, poll_interval=poll_interval, **knowledge_options)
        if watch:
            watcher.start()

        def close() -> None:
            watcher.stop()
            watcher.current().close()

        return cls(LocalBackend(watcher.current, closer=close))

    @classmethod
    def remote(
        cls,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> KnowledgeClient:
        """Over HTTP to ``evergraph serve`` at ``url`` (``token``: its bearer token, default none)."""
        return cls(HTTPBackend(url, token=token, timeout=timeout, transport=transport))

    def __enter__(self) -> KnowledgeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the backend (stops the champion watcher, closes HTTP connections)."""
        self.backend.close()

    def version(self) -> VersionInfo:
        """The model version answering, and what it holds."""
        return self.backend.version()

    def entity(self, name: str, *, k: int = 5) -> EntitySearch:
        """Entities matching a label or name, best first (default ``k=5``)."""
        return self.backend.entity(name, k=k)

    def facts(self, entity: str, *, limit: int = 50) -> FactsResult:
        """Known facts about ``entity`` (label or name), newest first (default ``limit=50``)."""
        return self.backend.facts(entity, limit=limit)

    def predict(self, head: str, relation: str, *, k: int = 10, direction: str = "tail") -> Predictions:
        """New answers of ``(head, relation, ?)`` (``direction="head"``: ``(?, relation, head)``), default
        ``k=10``, with calibrated confidence."""
        return self.backend.predict(head, relation, k=k, direction=direction)

    def similar(self, entity: str, *, k: int = 10) -> SimilarResult:
        """The ``k`` (default 10) entities nearest to ``entity`` in embedding space."""
        return self.backend.similar(entity, k=k)

    def explain(self, head: str, relation: str, tail: str) -> ExplainResult:
        """The evidence for ``(head, relation, tail)`` from the known facts: supporting paths ranked by the
        confidence of their mined rule, and analogous known facts."""
        return self.backend.explain(head, relation, tail)

    def guide(self, question: str) -> GuideResult:
        """Linked entities, cited known and inferred facts, context and prompt for ``question``."""
        return self.backend.guide(question)

    def ask(self, question: str) -> Answer:
        """The LLM's answer from the guide's cited facts; abstains (no LLM call) when the graph has nothing."""
        return self.backend.ask(question)
