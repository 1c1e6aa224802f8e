"""`evergraph up`'s knowledge server: started as a process for a home with a champion, answering over HTTP."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from evergraph.flows.cli import build_parser
from evergraph.flows.services import free_port, start_knowledge_server, stop_process
from evergraph.kg.store.home import EvergraphHome

ROOT = Path(__file__).resolve().parents[2]


def test_knowledge_server_process_serves_the_champion(knowledge_home: EvergraphHome, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = start_knowledge_server(home=knowledge_home, port=free_port(), env=env, logs=tmp_path / "logs")
    try:
        assert started.url is not None
        assert httpx.get(f"{started.url}/healthz").json() == {"status": "ok", "version": "2"}
        guide = httpx.post(f"{started.url}/guide", json={"question": "Who was born in Paris?"}, timeout=30).json()
        assert guide["version"] == "2" and guide["facts"]
    finally:
        stop_process(started)
    assert started.process.poll() is not None


def test_up_options_for_the_knowledge_server() -> None:
    parser = build_parser()
    assert parser.parse_args(["up"]).knowledge_port == 8000
    assert parser.parse_args(["up", "--no-knowledge"]).no_knowledge


def test_up_prints_each_service_when_ready_and_when_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The start functions are stand-ins (a sleeping process each); what is tested is the order of the lines:
    a service and its URL appear only after its start function returned (it waits for health), and each
    stop is printed after the process exited."""
    import subprocess
    import sys

    from evergraph.flows import services

    order: list[str] = []

    def fake(name: str, url: str | None) -> Callable[..., services.Started]:
        def start(**_: object) -> services.Started:
            order.append(f"start {name}")
            process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
            return services.Started(name=name, process=process, url=url, log=tmp_path / f"{name}.log")

        return start

    monkeypatch.setattr(services, "start_prefect_server", fake("prefect-server", "http://127.0.0.1:1"))
    monkeypatch.setattr(services, "start_worker", fake("prefect-worker", None))
    monkeypatch.setattr(services, "start_mlflow_ui", fake("mlflow-ui", "http://127.0.0.1:2"))
    monkeypatch.setattr(services, "start_knowledge_server", fake("knowledge-server", "http://127.0.0.1:3"))
    home = EvergraphHome(tmp_path / "home")
    home.root.mkdir(parents=True)
    home.champion_pointer.write_text("{}")
    up = services.LocalServices(home=home, deploy=False, console=Console(file=sys.stdout, width=200))
    up.start()
    started = list(up.started)
    lines = capsys.readouterr().out.splitlines()
    ready = [line for line in lines if line.startswith("ready")]
    assert [line.split()[1] for line in ready] == ["prefect-server", "prefect-worker", "mlflow-ui", "knowledge-server"]
    assert "http://127.0.0.1:1" in ready[0] and "http://127.0.0.1:3/docs" in ready[3]
    assert not any("http://" in line for line in lines if not line.startswith("ready"))  # no URL before ready
    up.stop()
    stopped = capsys.readouterr().out.splitlines()
    names = ("knowledge-server", "mlflow-ui", "prefect-worker", "prefect-server")
    assert stopped == [f"stopped  {name}" for name in names]
    assert all(s.process.poll() is not None for s in started)
