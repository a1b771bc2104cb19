"""Run the app with uvicorn: in the foreground (CLI) or in a background thread (tests, benchmarks).

The socket is bound before anything expensive (`bind_socket`), so a port in use is reported before the model
loads. On Ctrl-C / SIGTERM the foreground server first closes the app (the model thread fails every running request
with a `shutdown` error, so each open stream gets an error event and `[DONE]`), then lets uvicorn finish the
responses, then joins the model thread, so the process never exits with a torch thread still running.
"""

from __future__ import annotations

import errno
import socket
import sys
import threading
import time
from typing import Callable

import uvicorn

from ..errors import ConfigError


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on host:port, or a one-line ConfigError (port in use, bad address)."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port: must be between 0 and 65535, got {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ConfigError(f"{host}:{port}: address already in use (another server is running there; "
                              "stop it or pick another --port)") from None
        if e.errno == errno.EACCES:
            raise ConfigError(f"{host}:{port}: permission denied (ports below 1024 need root; pick --port "
                              "8000 or above)") from None
        raise ConfigError(f"--host {host} --port {port}: cannot bind ({e.strerror or e})") from None
    return sock


def app_closer(app) -> Callable[[], None] | None:
    """The app's close hook (stops the model thread after failing its requests), if it has one."""
    return getattr(app.state, "close", None)


class _GracefulServer(uvicorn.Server):
    """uvicorn.Server that closes the app as soon as the first exit signal arrives (not after the grace period),
    so streams end with an error event instead of being cut when the grace period runs out."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None] | None):
        super().__init__(config)
        self._on_exit = on_exit
        self._closing: threading.Thread | None = None
        self.signalled: int | None = None

    def handle_exit(self, sig, frame) -> None:
        super().handle_exit(sig, frame)
        # handled here: uvicorn would re-raise it after shutdown and turn a clean stop into a crash
        self._captured_signals.clear()
        self.signalled = sig
        if self._on_exit is not None and self._closing is None:
            # off the signal handler: close() joins the model thread
            self._closing = threading.Thread(target=self._on_exit, name="sealion-close", daemon=True)
            self._closing.start()

    def finish_closing(self) -> None:
        if self._closing is not None:
            self._closing.join(30)
        elif self._on_exit is not None:
            self._on_exit()


class ServerThread:
    """A uvicorn server on its own thread. `port=0` picks a free port; `url` is the base URL (no /v1).

        with ServerThread(create_app(model, tok)) as server:
            client = openai.OpenAI(base_url=server.url + "/v1", api_key="x")
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        self.app = app
        self.host = host
        self._sock = bind_socket(host, port)
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(app, log_level=log_level, lifespan="on", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]},
                                        name="sealion-uvicorn", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 60.0) -> "ServerThread":
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_forever(app, host: str, port: int, log_level: str = "info", sock: socket.socket | None = None) -> None:
    """Serve in the foreground until Ctrl-C / SIGTERM; returns after a clean shutdown (the signal is handled)."""
    sock = sock or bind_socket(host, port)
    config = uvicorn.Config(app, log_level=log_level, lifespan="on", timeout_graceful_shutdown=5)
    server = _GracefulServer(config, app_closer(app))
    try:
        server.run(sockets=[sock])
    finally:
        server.finish_closing()
        sock.close()
    if server.signalled is not None:
        print("sealion serve: stopped", file=sys.stderr)
