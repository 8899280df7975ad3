"""Running the app: ``serve`` (the ``seasoned serve`` command) and ``BackgroundServer`` (tests, benchmarks).

Both run uvicorn with the connection guards of ``guards`` (header deadline, connection cap, send timeout).
Ctrl-C (or SIGTERM) stops the server at once: every request in flight gets a clean 503 naming its run,
which stays ``interrupted`` and resumable (``POST /v1/runs/{id}/resume``), and the process exits within
about a second. A second Ctrl-C exits immediately (code 130); runs it cut off are marked interrupted by
the next server that opens the same database.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from typing import Any

import uvicorn

from .settings import ServerConfigError, ServerSettings, check_bind, gather_keys

GRACEFUL_SHUTDOWN_S = 10  # after the runs in flight were stopped: time for their replies to go out


def build_settings(host: str, *, model: str | None = None, keys_file: str | None = None,
                   db_url: str | None = None, **options: Any) -> ServerSettings:
    """Settings for ``serve``: keys from ``SEASONED_API_KEYS`` and the keys file; refuses a non-loopback
    host without keys (``ServerConfigError``)."""
    keys = gather_keys(keys_file)
    check_bind(host, keys)
    values: dict[str, Any] = {"keys": keys, "db_url": db_url, **options}
    if model:
        values["model"] = model
    try:
        return ServerSettings(**values)
    except ValueError as exc:
        raise ServerConfigError(f"server settings: {exc}") from None


def serve(host: str = "127.0.0.1", port: int = 8000, *, model: str | None = None, keys_file: str | None = None,
          db_url: str | None = None, log_level: str = "info", **options: Any) -> None:
    """Run the service until interrupted. ``options`` are further ``ServerSettings`` fields (models,
    strategy, budget, max_budget, memory, max_concurrent_per_key...). A bad setting, or a host beyond
    loopback without API keys, prints one error line and exits with code 2."""
    from .app import create_app

    try:
        settings = build_settings(host, model=model, keys_file=keys_file, db_url=db_url, **options)
        app = create_app(settings)
    except (ServerConfigError, ValueError) as exc:
        print(f"seasoned serve: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    server = StoppingServer(uvicorn_config(app, host=host, port=port, log_level=log_level))
    server.run()


def uvicorn_config(app: Any, **options: Any):
    """uvicorn's config for ``app`` with the connection guards its settings ask for."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    from .guards import ConnectionLimits, guarded_protocol

    settings: ServerSettings = app.state.settings
    limits = ConnectionLimits(header_timeout=settings.header_timeout, send_timeout=settings.send_timeout,
                              max_connections=settings.max_connections)
    return uvicorn.Config(app, http=guarded_protocol(AutoHTTPProtocol, limits), lifespan="on",
                          timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, backlog=2048,
                          timeout_keep_alive=5, **options)


class StoppingServer(uvicorn.Server):
    """uvicorn's server whose first exit signal also stops the runs in flight (each request answers 503
    at once instead of holding the shutdown), and whose second exits the process immediately."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.should_exit:
            print("seasoned serve: second interrupt: exiting now", file=sys.stderr, flush=True)
            os._exit(130)
        self.should_exit = True  # (not re-raised after the shutdown, unlike uvicorn's: a stop is an exit 0)
        self.stop_runs()

    def stop_runs(self) -> None:
        service = getattr(getattr(self.config.app, "state", None), "service", None)
        loop = getattr(service, "loop", None)
        if service is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(service.begin_shutdown)


class BackgroundServer:
    """The app on 127.0.0.1 and a free port, in a thread: ``with BackgroundServer(app) as url: ...``."""

    def __init__(self, app: Any, host: str = "127.0.0.1", log_level: str = "warning"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.host, self.port = self.sock.getsockname()[:2]
        self.server = StoppingServer(uvicorn_config(app, log_level=log_level))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name="seasoned-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> str:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self.url

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        self.server.stop_runs()
        self.thread.join(timeout)
        self.sock.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
