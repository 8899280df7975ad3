"""Running the app: ``serve`` (the ``seasoned serve`` command) and ``BackgroundServer`` (tests, benchmarks)."""

from __future__ import annotations

import socket
import sys
import threading
import time
from typing import Any

from .settings import ServerConfigError, ServerSettings, check_bind, gather_keys


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
    import uvicorn

    from .app import create_app

    try:
        settings = build_settings(host, model=model, keys_file=keys_file, db_url=db_url, **options)
        app = create_app(settings)
    except (ServerConfigError, ValueError) as exc:
        print(f"seasoned serve: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=10)


class BackgroundServer:
    """The app on 127.0.0.1 and a free port, in a thread: ``with BackgroundServer(app) as url: ...``."""

    def __init__(self, app: Any, host: str = "127.0.0.1", log_level: str = "warning"):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.host, self.port = self.sock.getsockname()[:2]
        config = uvicorn.Config(app, log_level=log_level, lifespan="on", timeout_graceful_shutdown=5,
                                backlog=2048)
        self.server = uvicorn.Server(config)
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
        self.thread.join(timeout)
        self.sock.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
