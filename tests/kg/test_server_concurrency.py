"""Concurrent ``/guide`` requests: each gets the in-process answer to its own question, a server's ``concurrency``
caps the questions computed at once, and a worker runs torch and FAISS on the threads it is given."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import torch

from evergraph.kg.knowledge.knowledge import Knowledge
from evergraph.kg.knowledge.schemas import GuideResult
from evergraph.kg.service import server
from evergraph.kg.service.server import (
    WORKER_SETTINGS_ENV,
    TcpConfig,
    WorkerSettings,
    create_app,
    serve_workers,
    worker_app,
)
from evergraph.kg.store.bundle import load_champion
from evergraph.kg.store.home import EvergraphHome
from tests.servers import running

QUESTIONS = [
    "Where was {person} born?",
    "Which country is Paris located in?",
    "Who works for {company}?",
    "What is the capital of France?",
]


class Counting:
    """A :class:`Knowledge` whose ``guide`` counts how many questions it computes at once."""

    def __init__(self, knowledge: Knowledge) -> None:
        self.knowledge = knowledge
        self.active = 0
        self.peak = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.knowledge, name)

    def guide(self, question: str) -> GuideResult:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(0.02)  # long enough for the other requests to arrive while this one computes
            return self.knowledge.guide(question)
        finally:
            with self._lock:
                self.active -= 1


@pytest.fixture(scope="module")
def knowledge(knowledge_home_template: EvergraphHome) -> Iterator[Knowledge]:
    served = Knowledge(load_champion(knowledge_home_template))
    yield served
    served.close()


def _questions(knowledge: Knowledge) -> list[str]:
    names = knowledge.bundle.entity_names
    person = next(name for label, name in names.items() if label.startswith("person/"))
    company = next((name for label, name in names.items() if label.startswith("company/")), "Acme")
    return [q.format(person=person, company=company) for q in QUESTIONS] * 4


@pytest.mark.parametrize("concurrency", [1, 2])
def test_concurrent_guides_get_their_own_answers_within_the_cap(knowledge: Knowledge, concurrency: int) -> None:
    counting = Counting(knowledge)
    questions = _questions(knowledge)
    expected = {q: json.loads(knowledge.guide(q).model_dump_json()) for q in set(questions)}
    with running(create_app(lambda: counting, concurrency=concurrency)) as url:  # type: ignore[arg-type,return-value]

        def ask(question: str) -> tuple[str, int, dict[str, Any]]:
            with httpx.Client(base_url=url, timeout=60) as client:
                response = client.post("/guide", json={"question": question})
                return question, response.status_code, response.json()

        with concurrent.futures.ThreadPoolExecutor(len(questions)) as pool:
            answers = list(pool.map(ask, questions))
        with httpx.Client(base_url=url, timeout=60) as client:  # the event loop stays free for cheap paths
            assert client.get("/healthz").json()["version"] == knowledge.version
    assert [status for _, status, _ in answers] == [200] * len(questions)
    for question, _, body in answers:
        assert body == expected[question]
    assert 1 <= counting.peak <= concurrency


def test_workers_split_the_cores_between_them(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[dict[str, Any]] = []

    class Supervisor:
        def __init__(self, config: Any, sockets: list[socket.socket]) -> None:
            started.append({"config": config, "sockets": sockets})

        def run(self) -> None:
            for sock in started[-1]["sockets"]:
                sock.close()

    monkeypatch.setattr("uvicorn.supervisors.Multiprocess", Supervisor)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.delenv(WORKER_SETTINGS_ENV, raising=False)
    serve_workers(WorkerSettings(), workers=4, port=0)
    assert started[0]["config"].workers == 4 and started[0]["config"].factory is True
    assert WorkerSettings.model_validate_json(os.environ[WORKER_SETTINGS_ENV]).threads == 2
    serve_workers(WorkerSettings(threads=3), workers=4, port=0)  # a count given is kept
    assert WorkerSettings.model_validate_json(os.environ[WORKER_SETTINGS_ENV]).threads == 3


def test_the_workers_socket_sends_responses_at_once() -> None:
    """Accepted connections get TCP_NODELAY (without it every keep-alive response waited ~40 ms for an ACK)."""
    listener = TcpConfig("app:app", host="127.0.0.1", port=0).bind_socket()
    assert listener.proto == socket.IPPROTO_TCP and listener.get_inheritable()
    nodelay: list[int] = []

    async def accept_one() -> None:
        accepted = asyncio.Event()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                nodelay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()
                accepted.set()

        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        await asyncio.wait_for(accepted.wait(), timeout=10)
        writer.close()
        server.close()

    asyncio.run(accept_one())
    assert nodelay == [1]


def test_a_worker_runs_on_its_threads_and_caps_its_concurrency(
    knowledge_home_template: EvergraphHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faiss

    threads, faiss_threads = torch.get_num_threads(), faiss.omp_get_max_threads()
    made: dict[str, Any] = {}
    real_create_app = server.create_app
    monkeypatch.setattr(server, "create_app", lambda *a, **k: made.update(k) or real_create_app(*a, **k))
    settings = WorkerSettings(home=str(knowledge_home_template.root), threads=1)
    monkeypatch.setenv(WORKER_SETTINGS_ENV, settings.model_dump_json())
    try:
        app = worker_app()
        assert torch.get_num_threads() == 1 and faiss.omp_get_max_threads() == 1
        assert made["concurrency"] == 1  # by default a worker computes as many questions at once as it has threads
        app.state.watcher.stop()
    finally:
        torch.set_num_threads(threads)
        faiss.omp_set_num_threads(faiss_threads)
