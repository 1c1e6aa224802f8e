"""Real HTTP for tests: an ASGI app under uvicorn in a daemon thread on 127.0.0.1, on a free port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


class ThreadedServer:
    """Serves ``app`` once :meth:`start` returns (it waits until uvicorn accepts connections); :meth:`stop` asks it
    to exit and waits for its thread."""

    def __init__(self, app: Any, *, name: str) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", access_log=False)
        self.name = name
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=name, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 10.0) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the test server {self.name} did not start; see the uvicorn log above")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self, *, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)


@contextmanager
def running(app: Any, *, timeout: float = 10.0) -> Iterator[str]:
    """Serve ``app`` for the duration of the block; yields its base URL."""
    server = ThreadedServer(app, name="evergraph-test-server").start(timeout=timeout)
    try:
        yield server.url
    finally:
        server.stop(timeout=timeout)
