"""`evergraph up`'s knowledge server: started as a process for a home with a champion, answering over HTTP."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

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
