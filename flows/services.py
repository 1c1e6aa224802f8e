"""Local services for ``evergraph up``: a Prefect server, a process worker and the MLflow UI on 127.0.0.1.

Each runs as its own process group with its log in ``HOME/logs/``; stopping (Ctrl-C, SIGTERM) stops all of
them. The same helpers start the server and worker of the end-to-end test.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console

from evergraph.kg.errors import EvergraphError
from evergraph.kg.store.home import EvergraphHome

logger = logging.getLogger(__name__)

WORK_POOL = "evergraph-process"
"""The process work pool that ``prefect.yaml``'s deployments use."""
PROJECT_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prefect_cli(*args: str, env: dict[str, str], cwd: Path = PROJECT_ROOT, timeout: float = 300) -> str:
    """Run ``prefect --no-prompt ARGS`` to completion; its output, or an error that includes it."""
    command = [sys.executable, "-m", "prefect", "--no-prompt", *args]
    done = subprocess.run(command, env={**os.environ, **env}, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise EvergraphError(f"`prefect {' '.join(args)}` failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def wait_for_http(url: str, *, timeout: float = 180, process: subprocess.Popen | None = None) -> None:
    """Wait until ``url`` answers 200 (or ``process`` exits, which is an error)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise EvergraphError(f"the process serving {url} exited with status {process.returncode}; see its log")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise EvergraphError(f"{url} did not answer within {timeout:.0f}s")


@dataclass
class Started:
    name: str
    process: subprocess.Popen
    url: str | None
    log: Path


def start_process(name: str, command: list[str], *, env: dict[str, str], logs: Path, url: str | None = None) -> Started:
    """Start ``command`` in its own process group, output to ``logs/<name>.log``."""
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with log.open("ab") as handle:
        process = subprocess.Popen(
            command,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},  # its log is current (readiness is read from it)
            cwd=PROJECT_ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Started(name=name, process=process, url=url, log=log)


def stop_process(started: Started, *, timeout: float = 15) -> None:
    """SIGTERM the process group, then SIGKILL it if it has not exited within ``timeout`` seconds."""
    if started.process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.killpg(started.process.pid, sig)
        except ProcessLookupError:
            return
        try:
            started.process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def start_healthy(name: str, command: list[str], *, env: dict[str, str], logs: Path, url: str, health: str) -> Started:
    """:func:`start_process`, then wait until ``url + health`` answers 200; the process is stopped if it never
    does."""
    started = start_process(name, command, env=env, logs=logs, url=url)
    try:
        wait_for_http(f"{url}{health}", process=started.process)
    except BaseException:
        stop_process(started)
        raise
    return started


def start_prefect_server(*, port: int, env: dict[str, str], logs: Path) -> Started:
    """``prefect server start`` on 127.0.0.1:``port``; returns once its health check answers."""
    return start_healthy(
        "prefect-server",
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        logs=logs,
        url=f"http://127.0.0.1:{port}",
        health="/api/health",
    )


def wait_for_log(started: Started, text: str, *, offset: int = 0, timeout: float = 120) -> None:
    """Wait until ``started``'s log (from byte ``offset`` on: earlier runs append to the same log) contains
    ``text``; an error if the process exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if started.process.poll() is not None:
            raise EvergraphError(f"{started.name} exited with status {started.process.returncode}; see {started.log}")
        with started.log.open("rb") as handle:
            handle.seek(offset)
            if text.encode() in handle.read():
                return
        time.sleep(0.5)
    raise EvergraphError(f"{started.name} did not report {text!r} within {timeout:.0f}s; see {started.log}")


def start_worker(*, pool: str = WORK_POOL, env: dict[str, str], logs: Path) -> Started:
    """A process worker polling ``pool`` (created first when missing); returns once it says it started."""
    prefect_cli("work-pool", "create", pool, "--type", "process", "--overwrite", env=env)
    logs.mkdir(parents=True, exist_ok=True)
    offset = (logs / "prefect-worker.log").stat().st_size if (logs / "prefect-worker.log").exists() else 0
    started = start_process(
        "prefect-worker",
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"],
        env=env,
        logs=logs,
    )
    try:
        wait_for_log(started, "started!", offset=offset)
    except BaseException:
        stop_process(started)
        raise
    return started


def start_mlflow_ui(*, home: EvergraphHome, port: int, env: dict[str, str], logs: Path) -> Started:
    """``mlflow ui`` on the home's store on 127.0.0.1:``port``; returns once its ``/health`` answers."""
    return start_healthy(
        "mlflow-ui",
        [
            str(BIN / "mlflow"),
            "ui",
            "--backend-store-uri",
            home.tracking_uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        logs=logs,
        url=f"http://127.0.0.1:{port}",
        health="/health",
    )


def start_knowledge_server(*, home: EvergraphHome, port: int, env: dict[str, str], logs: Path) -> Started:
    """``evergraph serve`` for ``home``'s champion on 127.0.0.1:``port``; returns once ``/healthz`` answers."""
    return start_healthy(
        "knowledge-server",
        [sys.executable, "-m", "evergraph.kg.service.cli", "serve", "--home", str(home.root), "--port", str(port)],
        env=env,
        logs=logs,
        url=f"http://127.0.0.1:{port}",
        health="/healthz",
    )


@dataclass
class LocalServices:
    """``evergraph up``: server, worker (and deployments), MLflow UI and, when the home has a champion, the
    knowledge server (``evergraph serve``), stopped together."""

    home: EvergraphHome
    prefect_port: int = 4200
    mlflow_port: int = 5000
    knowledge_port: int | None = 8000
    environment: dict[str, str] = field(default_factory=dict)
    deploy: bool = True
    started: list[Started] = field(default_factory=list)
    console: Console = field(default_factory=lambda: Console(highlight=False, soft_wrap=True))

    def _ready(self, started: Started, what: str) -> None:
        self.started.append(started)
        where = f"  {started.url}{'/docs' if started.name == 'knowledge-server' else ''}" if started.url else ""
        self.console.print(f"ready    {started.name:<17}{where}  {what}".rstrip())

    def start(self) -> None:
        """Start each service and print it once it answers (only then its URL)."""
        logs = self.home.root / "logs"
        env = {**self.environment, "PREFECT_API_URL": f"http://127.0.0.1:{self.prefect_port}/api"}
        self.console.print(f"starting the Prefect server first (logs in {logs}) ...")
        self._ready(start_prefect_server(port=self.prefect_port, env=env, logs=logs), "(Prefect UI and API)")
        self._ready(start_worker(env=env, logs=logs), f"(process worker polling pool {WORK_POOL!r})")
        if self.deploy:
            prefect_cli("deploy", "--all", env=env)
            self.console.print(
                "deployed evergraph-lifelong, evergraph-rollback (run one: `evergraph trigger` or "
                "`prefect deployment run 'evergraph-lifelong/evergraph-lifelong'`)"
            )
        self._ready(start_mlflow_ui(home=self.home, port=self.mlflow_port, env=env, logs=logs), "(MLflow UI)")
        if self.knowledge_port is not None and self.home.champion_pointer.exists():
            self._ready(
                start_knowledge_server(home=self.home, port=self.knowledge_port, env=env, logs=logs),
                "(knowledge API, follows the champion)",
            )
        elif self.knowledge_port is not None:
            self.console.print("knowledge server not started: no champion yet (after `evergraph run`: evergraph serve)")

    def stop(self) -> None:
        """Stop the services, newest first, printing each once it has exited."""
        for started in reversed(self.started):
            stop_process(started)
            self.console.print(f"stopped  {started.name}")
        self.started.clear()

    def run_until_stopped(self) -> int:
        """Start everything, print the URLs, and wait for Ctrl-C/SIGTERM or for a service to die."""
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        try:
            self.start()
            self.console.print(
                f"all up. Prefect CLI: export PREFECT_API_URL=http://127.0.0.1:{self.prefect_port}/api; "
                "Ctrl-C stops them all."
            )
            while all(s.process.poll() is None for s in self.started):
                time.sleep(1)
            dead = [s.name for s in self.started if s.process.poll() is not None]
            logger.error("%s exited; stopping the others (see %s)", ", ".join(dead), self.home.root / "logs")
            return 1
        except KeyboardInterrupt:
            self.console.print("stopping ...")
            return 0
        finally:
            self.stop()
