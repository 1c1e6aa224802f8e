"""``evergraph serve``: the knowledge API over HTTP (FastAPI + uvicorn).

Endpoints (JSON; OpenAPI docs at ``/docs``, schema at ``/openapi.json``):

- ``GET /healthz``: liveness and the served version (never needs the token);
- ``GET /version``: :class:`evergraph.kg.knowledge.schemas.VersionInfo`;
- ``GET /entities?name=&k=``, ``GET /facts?entity=&limit=``, ``GET /predict?head=&relation=&k=&direction=``,
  ``GET /similar?entity=&k=``, ``GET /explain?head=&relation=&tail=``;
- ``POST /guide`` and ``POST /ask`` with ``{"question": "..."}``.

Every response of a query carries the ``version`` that answered it (and the ``X-Evergraph-Version`` header).
The server binds 127.0.0.1 by default. With a token (``--token-env``), every endpoint but ``/healthz`` needs
``Authorization: Bearer <token>`` (401 otherwise), ``/docs``, ``/redoc`` and ``/openapi.json`` included, checked
before a body is read; a body over 64 KiB (``max_body_bytes``) is 413 before it is parsed; a non-loopback host
without a token is refused unless ``insecure``. Limits give 4xx, never 5xx: a question longer than
``max_question_chars`` (default 2,000) is 413, ``k``/``limit`` outside ``1..100`` and malformed input 422; any
other error is a bug: 500, its traceback logged.
``/ask`` without an LLM configured is 503, an LLM failure 502. The champion is followed by a
:class:`evergraph.kg.service.serving.ChampionWatcher`: a new champion is loaded beside the old one and swapped in
atomically.

With several workers (:func:`serve_workers`, ``evergraph serve --workers N``) uvicorn runs N processes accepting on
one port; each builds its app with :func:`worker_app` from :class:`WorkerSettings` (passed in the environment, the
token only by the name of its variable) and follows the champion itself, with the same token guard and body cap.
Bundles are memory-mapped (:meth:`evergraph.kg.store.bundle.Bundle.load`), so the workers share one copy of the
weights and the index in the page cache.
"""

import contextlib
import logging
import os
import socket
from collections.abc import Callable
from typing import Annotated, Any

import anyio.to_thread
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evergraph.kg.errors import EvergraphError, InvalidQueryError, LLMNotConfiguredError, QuestionTooLongError
from evergraph.kg.knowledge.explain_schemas import ExplainResult
from evergraph.kg.knowledge.knowledge import MAX_K, Knowledge, knowledge_options
from evergraph.kg.knowledge.linking import MAX_QUESTION_CHARS
from evergraph.kg.knowledge.schemas import (
    Answer,
    EntitySearch,
    FactsResult,
    GuideResult,
    Predictions,
    SimilarResult,
    VersionInfo,
)
from evergraph.kg.service.guard import MAX_BODY_BYTES, RequestGuard, check_exposure, token_matches

logger = logging.getLogger(__name__)

__all__ = ["QuestionRequest", "WorkerSettings", "create_app", "limit_threads", "serve", "serve_workers", "worker_app"]

WORKER_SETTINGS_ENV = "EVERGRAPH_SERVE_WORKER"
"""The environment variable :func:`serve_workers` hands :class:`WorkerSettings` to the worker processes in."""


class QuestionRequest(BaseModel):
    """Body of ``POST /guide`` and ``POST /ask``."""

    model_config = ConfigDict(extra="forbid")
    question: str


def create_app(
    current: Callable[[], Knowledge],
    *,
    token: str | None = None,
    max_question_chars: int = MAX_QUESTION_CHARS,
    max_body_bytes: int = MAX_BODY_BYTES,
    concurrency: int | None = None,
) -> FastAPI:
    """The FastAPI app answering from ``current()`` (called once per request, e.g.
    :meth:`evergraph.kg.service.serving.ChampionWatcher.current`). ``token`` (default none) requires a bearer token
    on every path but ``/healthz`` (the docs included), checked before a body is read; a body over
    ``max_body_bytes`` (default 64 KiB) is 413 before it is parsed (:class:`evergraph.kg.service.guard.RequestGuard`).
    ``concurrency`` (default None: Starlette's thread pool, 40 threads) caps the queries computed at once in this
    process; the others wait in the event loop rather than in threads taking turns on the GIL.
    """
    from evergraph.kg.errors import LLMError

    # /docs and /redoc from the Swagger UI / ReDoc files fastapi-offline ships (no CDN: they work offline);
    # no validator badge, which would call validator.swagger.io
    app = FastAPIOffline(
        title="Evergraph knowledge API",
        description="Known and inferred facts of the champion knowledge-graph model, and knowledge guiding for LLMs.",
        version="1",
        swagger_ui_parameters={"validatorUrl": None},
    )
    limiter = None if concurrency is None else anyio.CapacityLimiter(concurrency)  # binds to the serving loop

    # the guard and the served version are async: they never block, and a sync dependency would cost each
    # request a hop through the thread pool
    async def authorise(request: Request) -> None:
        if token is None:
            return
        if not token_matches(request.headers.get("authorization", ""), token):
            raise HTTPException(
                status_code=401,
                detail="missing or wrong bearer token: send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    async def knowledge() -> Knowledge:
        return current()  # once per request: the whole request uses this version

    app.add_middleware(RequestGuard, token=token, max_body_bytes=max_body_bytes)  # before any route or body parse
    Auth = Depends(authorise)
    Served = Annotated[Knowledge, Depends(knowledge)]
    K = Annotated[int, Query(ge=1, le=MAX_K)]
    Label = Annotated[str, Query(min_length=1, max_length=500)]  # an entity or relation label or name

    # Only our own input errors are the client's fault (4xx); anything else is a bug: 500, traceback logged.
    @app.exception_handler(QuestionTooLongError)
    async def too_long(request: Request, error: QuestionTooLongError) -> JSONResponse:
        return JSONResponse(status_code=413, content={"detail": str(error)})

    @app.exception_handler(InvalidQueryError)
    async def bad_query(request: Request, error: InvalidQueryError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(error)})

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception) -> JSONResponse:
        logger.error("%s %s failed with an internal error", request.method, request.url.path, exc_info=error)
        return JSONResponse(
            status_code=500, content={"detail": "internal server error (a bug, not your request); see the server log"}
        )

    async def compute(work: Callable[[], Response]) -> Response:
        """``work()`` in a worker thread, at most ``concurrency`` at once (the event loop never computes)."""
        return await anyio.to_thread.run_sync(work, limiter=limiter)

    def check_question(question: str) -> None:
        if len(question) > max_question_chars:
            raise HTTPException(
                status_code=413,
                detail=f"the question has {len(question)} characters, more than the {max_question_chars} allowed",
            )
        if not question.strip():
            raise HTTPException(status_code=422, detail="the question is empty")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: ``{"status": "ok", "version"}`` (no token needed)."""
        return {"status": "ok", "version": current().version}

    @app.get("/version", dependencies=[Auth], response_model=VersionInfo)
    async def version(served: Served) -> Response:
        """The served model version and snapshot."""
        return _json(served.info())

    @app.get("/entities", dependencies=[Auth], response_model=EntitySearch)
    async def entities(served: Served, name: Label, k: K = 5) -> Response:
        """Entities matching a label or name."""
        return await compute(lambda: _json(served.entity(name, k=k)))

    @app.get("/facts", dependencies=[Auth], response_model=FactsResult)
    async def facts(served: Served, entity: Label, limit: K = 50) -> Response:
        """Known facts about an entity."""
        return await compute(lambda: _json(served.facts(entity, limit=limit)))

    @app.get("/predict", dependencies=[Auth], response_model=Predictions)
    async def predict(
        served: Served,
        head: Label,
        relation: Label,
        k: K = 10,
        direction: Annotated[str, Query(pattern="^(tail|head)$")] = "tail",
    ) -> Response:
        """New answers of (head, relation, ?) by link prediction, with calibrated confidence."""
        return await compute(
            lambda: _json(served.predict(head, relation, k=k, direction=direction)),  # type: ignore[arg-type]
        )

    @app.get("/similar", dependencies=[Auth], response_model=SimilarResult)
    async def similar(served: Served, entity: Label, k: K = 10) -> Response:
        """Entities nearest in embedding space."""
        return await compute(lambda: _json(served.similar(entity, k=k)))

    @app.get("/explain", dependencies=[Auth], response_model=ExplainResult)
    async def explain(
        served: Served,
        head: Label,
        relation: Label,
        tail: Label,
    ) -> Response:
        """The evidence for (head, relation, tail): supporting paths of known facts ranked by rule confidence,
        and analogous known facts."""
        return await compute(lambda: _json(served.explain(head, relation, tail)))

    @app.post("/guide", dependencies=[Auth], response_model=GuideResult)
    async def guide(served: Served, body: QuestionRequest) -> Response:
        """Linked entities, cited facts, context and prompt for a question (abstains when the graph has none)."""
        check_question(body.question)
        return await compute(lambda: _json(served.guide(body.question)))

    @app.post("/ask", dependencies=[Auth], response_model=Answer)
    def ask(served: Served, body: QuestionRequest) -> Response:
        """The LLM's answer from the guide's cited facts (no LLM call when the guide abstains)."""
        # Starlette's thread pool, not the compute limiter: the thread mostly waits for the LLM
        check_question(body.question)
        try:
            return _json(served.ask(body.question))
        except LLMNotConfiguredError as error:
            raise HTTPException(status_code=503, detail=str(error)) from None
        except LLMError as error:
            raise HTTPException(status_code=502, detail=f"the LLM endpoint failed: {error}") from None

    return app


def _json(result: BaseModel) -> Response:
    """``result`` as JSON, serialised once (no second validation against the response model), with the version
    that answered in the ``X-Evergraph-Version`` header."""
    headers = {"X-Evergraph-Version": str(getattr(result, "version", ""))}
    return Response(content=result.model_dump_json(), media_type="application/json", headers=headers)


def serve(
    current: Callable[[], Knowledge],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    log_level: str = "info",
    insecure: bool = False,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> None:
    """Run the API with uvicorn until interrupted (host default 127.0.0.1, port 8000). A non-loopback ``host``
    without a ``token`` is refused (:class:`evergraph.kg.errors.InsecureServeError`) unless ``insecure``."""
    check_exposure(host=host, token=token, insecure=insecure)
    app = create_app(current, token=token, max_body_bytes=max_body_bytes)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


class WorkerSettings(BaseModel):
    """What every worker process of ``evergraph serve --workers N`` needs to build its app (JSON in the
    environment). The bearer token itself is not in it: only ``token_env``, the name of the variable holding it."""

    model_config = ConfigDict(extra="forbid")

    home: str | None = Field(None, description="Evergraph home (default $EVERGRAPH_HOME or ./.evergraph)")
    poll: float = Field(1.0, gt=0, description="seconds between champion checks")
    hops: int | None = Field(None, ge=1, le=2, description="guide hops (default the guide's)")
    encoder: str | None = Field(None, description="linking text encoder (default hashing)")
    relation_encoder: str | None = Field(None, description="relation encoder (default auto)")
    token_env: str | None = Field(None, description="environment variable holding the bearer token")
    max_body_bytes: int = Field(MAX_BODY_BYTES, gt=0, description="largest request body accepted (413 above)")
    chat: bool = Field(False, description="answer /ask with the LLM configured in the environment")
    threads: int | None = Field(
        None, ge=1, description="torch and FAISS threads per worker (default: the cores divided by the workers)"
    )
    concurrency: int | None = Field(
        None, ge=1, description="queries a worker computes at once (default: its threads); the rest wait their turn"
    )

    def knowledge_options(self) -> dict[str, Any]:
        """The :class:`Knowledge` options these settings name (guide hops, encoders, LLM client)."""
        options = knowledge_options(hops=self.hops, encoder=self.encoder, relation_encoder=self.relation_encoder)
        if self.chat:
            from evergraph.kg.knowledge.llm import ChatConfig

            options["chat"] = ChatConfig.from_env()
        return options

    def token(self) -> str | None:
        """The bearer token from :attr:`token_env` (``None`` without one); an unset or empty variable is an error."""
        if self.token_env is None:
            return None
        token = os.environ.get(self.token_env, "")
        if not token:
            raise EvergraphError(f"the token variable {self.token_env} is unset or empty; set it or drop --token-env")
        return token


def worker_app() -> FastAPI:
    """The app of one worker process (a uvicorn app factory): :class:`WorkerSettings` from the environment variable
    :data:`WORKER_SETTINGS_ENV`, a champion watcher of its own, the token guard and the body cap."""
    from evergraph.kg.service.serving import ChampionWatcher

    raw = os.environ.get(WORKER_SETTINGS_ENV)
    if raw is None:
        raise EvergraphError(
            f"{WORKER_SETTINGS_ENV} is not set: worker_app is started by `evergraph serve --workers N`, not directly"
        )
    try:
        settings = WorkerSettings.model_validate_json(raw)
    except ValidationError as error:
        raise EvergraphError(f"{WORKER_SETTINGS_ENV} does not hold worker settings ({error})") from None
    token = settings.token()
    threads = settings.threads or 1
    limit_threads(threads)
    watcher = ChampionWatcher(settings.home, poll_interval=settings.poll, **settings.knowledge_options()).start()
    logger.info("worker %d serving model version %s", os.getpid(), watcher.current().version)
    concurrency = settings.concurrency or threads
    app = create_app(watcher.current, token=token, max_body_bytes=settings.max_body_bytes, concurrency=concurrency)
    app.state.watcher = watcher
    return app


def limit_threads(threads: int) -> None:
    """Run torch's and FAISS's operations of this process on ``threads`` threads."""
    import torch

    torch.set_num_threads(threads)
    try:
        import faiss
    except ImportError:  # the index module names the missing extra when a bundle is loaded
        return
    faiss.omp_set_num_threads(threads)


def serve_workers(
    settings: WorkerSettings,
    *,
    workers: int,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    insecure: bool = False,
) -> None:
    """Run ``workers`` (>= 2) uvicorn worker processes on one ``host``:``port`` until interrupted, each answering
    from its own :func:`worker_app`. A non-loopback ``host`` without a token is refused unless ``insecure``."""
    from uvicorn.supervisors import Multiprocess

    if workers < 2:
        raise EvergraphError(f"serve_workers needs at least 2 workers, got {workers}; use serve for one process")
    check_exposure(host=host, token=settings.token(), insecure=insecure)
    if settings.threads is None:  # the workers share the cores: more threads would only oversubscribe them
        settings = settings.model_copy(update={"threads": max(1, (os.cpu_count() or 1) // workers)})
    os.environ[WORKER_SETTINGS_ENV] = settings.model_dump_json()
    app = f"{__name__}:worker_app"
    config = TcpConfig(app, factory=True, workers=workers, host=host, port=port, log_level=log_level)
    with contextlib.suppress(KeyboardInterrupt):
        Multiprocess(config, sockets=[config.bind_socket()]).run()


class TcpConfig(uvicorn.Config):
    """uvicorn's configuration, its listening socket marked as TCP, so that the workers' connections send at once.

    With several workers uvicorn binds the socket itself with ``proto`` 0, the accepted sockets inherit it, and
    asyncio sets ``TCP_NODELAY`` only on sockets that say ``IPPROTO_TCP``: Nagle's algorithm then holds each
    response's body until the client acknowledges its headers, which a client delays by 40 ms (uvicorn issue
    #3149: every keep-alive request took ~44 ms more, ``/healthz`` included)."""

    def bind_socket(self) -> socket.socket:
        bound = super().bind_socket()
        if bound.family not in (socket.AF_INET, socket.AF_INET6):
            return bound
        tcp = socket.socket(fileno=bound.detach())  # the kernel's own family, type and protocol: IPPROTO_TCP
        tcp.set_inheritable(True)
        return tcp
