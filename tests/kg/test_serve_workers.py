"""``evergraph serve --workers 2``: two uvicorn worker processes on one port answer, each keeps the token guard and
the body cap, and each follows the champion pointer."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from evergraph.kg.errors import EvergraphError
from evergraph.kg.knowledge.knowledge import Knowledge
from evergraph.kg.service.server import WORKER_SETTINGS_ENV, WorkerSettings, serve_workers, worker_app
from evergraph.kg.store.bundle import load_champion
from evergraph.kg.store.bundle_writer import switch_pointer
from evergraph.kg.store.home import EvergraphHome
from tests.conftest import born_person, wait_for

TOKEN_ENV = "EVERGRAPH_TEST_WORKERS_TOKEN"
TOKEN = "s3cret-token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _workers(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    children = psutil.Process(process.pid).children(recursive=True)
    return [child for child in children if "spawn_main" in " ".join(child.cmdline())]


@pytest.mark.slow
def test_two_workers_answer_guard_and_follow_the_champion(knowledge_home: EvergraphHome, tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, TOKEN_ENV: TOKEN, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "evergraph.kg.service.cli", "serve", "--home", str(knowledge_home.root)]
    command += ["--port", str(port), "--workers", "2", "--token-env", TOKEN_ENV, "--poll", "0.2"]
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert wait_for(lambda: _healthy(url) or process.poll() is not None, timeout=240), "no worker came up"
        assert process.poll() is None, (tmp_path / "serve.log").read_text()
        assert wait_for(lambda: len(_workers(process)) == 2, timeout=60), "expected two worker processes"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=url, timeout=60) as client:
            # both workers load before answering; the guard applies whichever worker answers
            for _ in range(8):
                assert client.get("/version").status_code == 401
                assert client.get("/openapi.json").status_code == 401
                answer = client.get("/version", headers=auth)
                assert answer.status_code == 200 and answer.json()["version"] == "2"
                big = client.post("/guide", headers=auth, content=b"{" + b" " * 70_000 + b"}")
                assert big.status_code == 413
            guided = client.post("/guide", headers=auth, json={"question": "Where was someone born?"})
            assert guided.status_code == 200 and guided.headers["X-Evergraph-Version"] == "2"

            # concurrent questions, spread over both workers: each gets the in-process answer to its own question
            knowledge = Knowledge(load_champion(knowledge_home))
            questions = [f"Where was {born_person(knowledge.bundle)} born?", "Which country is Paris located in?"]
            questions = (questions + ["What is the capital of France?", "Who is Zorblax Quintaine?"]) * 4
            expected = {q: json.loads(knowledge.guide(q).model_dump_json()) for q in set(questions)}

            def ask(question: str) -> tuple[str, int, dict[str, object]]:
                with httpx.Client(base_url=url, timeout=60, headers=auth) as own:
                    response = own.post("/guide", json={"question": question})
                    return question, response.status_code, response.json()

            with concurrent.futures.ThreadPoolExecutor(len(questions)) as pool:
                answers = list(pool.map(ask, questions))
            assert [status for _, status, _ in answers] == [200] * len(questions)
            for question, _, body in answers:
                assert body == expected[question], question

            # every worker follows the pointer: after the switch, all answers come from version 1
            switch_pointer(pointer=knowledge_home.champion_pointer, bundle=knowledge_home.bundle_dir("1"), version="1")

            def all_switched() -> bool:
                return all(client.get("/version", headers=auth).json()["version"] == "1" for _ in range(12))

            assert wait_for(all_switched, timeout=120)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        log.close()


def test_worker_settings_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WORKER_SETTINGS_ENV, raising=False)
    with pytest.raises(EvergraphError, match="started by `evergraph serve --workers N`"):
        worker_app()
    monkeypatch.setenv(WORKER_SETTINGS_ENV, '{"poll": -1}')
    with pytest.raises(EvergraphError, match="does not hold worker settings"):
        worker_app()
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(EvergraphError, match=f"{TOKEN_ENV} is unset or empty"):
        WorkerSettings(token_env=TOKEN_ENV).token()
    with pytest.raises(EvergraphError, match="at least 2 workers"):
        serve_workers(WorkerSettings(), workers=1)


def test_serve_refuses_bad_worker_counts_and_a_missing_champion(tmp_path: Path) -> None:
    from evergraph.kg.service.cli import main

    assert main(["serve", "--home", str(tmp_path / "home"), "--workers", "0"]) != 0
    assert main(["serve", "--home", str(tmp_path / "home"), "--workers", "2"]) != 0
