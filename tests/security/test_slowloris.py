"""Clients that hold `seasoned serve`'s connections without using them (issue 22 rows 12-13), against a real
uvicorn server on 127.0.0.1: slow headers and bodies are cut off, open requests are capped per key and
connections overall, a dropped connection is one log line, and a stream nobody reads is cancelled and its
slot freed. Timeouts are set small here; every wait below is a deadline against hangs, not a speed test."""

from __future__ import annotations

import logging
import socket
import time

import httpx
import pytest
from seasoned.models import scripted
from seasoned.server import BackgroundServer, ServerSettings, create_app
from serve_scripted import wait_for

KEY_A, KEY_B = "slow-key-a-0123456789", "slow-key-b-0123456789"
MODEL, BIG = "scripted/slow-solver", "scripted/slow-big"
BIG_REPLY = "z" * 3_000_000  # one long word: far more than the socket buffers hold, a few tokens


def reply(messages, params):
    return "40 plus 2 makes 42.\nAnswer: 42"


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture(scope="module")
def logs():
    handler = Records()
    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "seasoned.server")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield handler
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


def start(tmp, logs, **limits) -> tuple[BackgroundServer, object]:
    scripted.register("slow-solver", fn=reply)
    scripted.register("slow-big", fn=lambda messages, params: f"{BIG_REPLY}\nAnswer: 42")
    settings = ServerSettings(model=MODEL, models=[BIG], db_url=f"sqlite:///{tmp}/seasoned.db", memory=False,
                              keys={KEY_A: "alpha", KEY_B: "beta"}, **limits)
    app = create_app(settings)
    server = BackgroundServer(app, log_level="info")
    return server, app.state.service


@pytest.fixture(scope="module")
def quick(tmp_path_factory, logs):
    """Short deadlines: 1 s for headers, 2 s for a body, 1 s for a client that reads nothing."""
    server, service = start(tmp_path_factory.mktemp("quick"), logs, header_timeout=1.0, body_timeout=2.0,
                            send_timeout=1.0, max_concurrent_per_key=1)
    # Small socket buffers (accepted sockets inherit them): an unread reply fills them quickly.
    server.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    with server as url:
        yield url, service


@pytest.fixture(scope="module")
def capped(tmp_path_factory, logs):
    """Long deadlines, small caps: 2 open requests per key, 6 connections in all."""
    server, service = start(tmp_path_factory.mktemp("capped"), logs, header_timeout=120.0, body_timeout=120.0,
                            max_open_per_key=2, max_connections=6)
    with server as url:
        yield url, service


def connect(url: str, rcvbuf: int | None = None) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((host, int(port)))
    return sock


def head(key: str, length: int, path: str = "/v1/chat/completions") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


def read_until_closed(sock: socket.socket, seconds: float = 60.0) -> bytes:
    """Everything the server sends until it closes the connection (fails if it never does)."""
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {seconds} s; got {data[:200]!r}")
    except ConnectionResetError:
        pass
    return data


def ask(model: str = MODEL, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "What is 40 + 2?"}], **extra}


def test_slow_headers_are_cut_off(quick):
    url, _ = quick
    with connect(url) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the rest
        data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 408")


def test_a_slow_body_gets_408(quick):
    url, _ = quick
    with connect(url) as sock:
        sock.sendall(head(KEY_A, 1000) + b'{"model": ')  # 10 of the 1000 bytes promised
        data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 408") and b"request_timeout" in data


def test_open_requests_are_capped_per_key(capped):
    url, _ = capped
    slow = [connect(url) for _ in range(2)]
    try:
        for sock in slow:
            sock.sendall(head(KEY_A, 1000) + b"{")
        with httpx.Client(base_url=url, timeout=60) as client:
            refused = wait_for(lambda: (r := client.post("/v1/chat/completions", json=ask(),
                                                         headers={"Authorization": f"Bearer {KEY_A}"}))
                               .status_code == 429 and r, "the third open request of key A to be refused")
            other = client.post("/v1/chat/completions", json=ask(), headers={"Authorization": f"Bearer {KEY_B}"})
        assert refused.json()["error"]["code"] == "too_many_connections"
        assert other.status_code == 200, other.text
    finally:
        for sock in slow:
            sock.close()


def test_connections_are_capped_overall(capped):
    url, _ = capped
    idle = [connect(url) for _ in range(6)]
    try:
        with connect(url) as extra:
            data = read_until_closed(extra)
        assert data.startswith(b"HTTP/1.1 503") and b"too many open connections" in data
    finally:
        for sock in idle:
            sock.close()


def test_a_dropped_connection_is_one_line_not_a_traceback(capped, logs):
    url, _ = capped
    wait_for(lambda: _connections_free(url), "the earlier connections to close")
    before = len(logs.records)
    with connect(url) as sock:
        sock.sendall(head(KEY_A, 1000) + b'{"model": ')
        time.sleep(0.2)
    found = wait_for(lambda: [r for r in logs.records[before:] if "went away" in r.getMessage()],
                     "the server to notice the dropped connection")
    new = logs.records[before:]
    assert len(found) == 1
    assert not [r for r in new if r.exc_info or "Exception in ASGI" in r.getMessage()], [r.getMessage() for r in new]


def _connections_free(url: str) -> bool:
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            return client.get("/health").status_code == 200
    except httpx.HTTPError:
        return False


def test_an_unread_stream_is_cancelled_and_its_slot_freed(quick):
    url, service = quick
    with connect(url, rcvbuf=4096) as sock:  # asks for a stream, then never reads a byte
        body = httpx.Request("POST", url, json=ask(BIG, stream=True)).read()
        sock.sendall(head(KEY_A, len(body)) + body)
        wait_for(lambda: service.store.list_runs(limit=1, namespace="alpha"), "the run to start")
        run_id = service.store.list_runs(limit=1, namespace="alpha")[0].id
        # The reply cannot be delivered; after send_timeout the server gives the connection (and slot) up.
        wait_for(lambda: _in_flight(service, "key-0") == 0, "the unread stream's slot to be freed")
        with httpx.Client(base_url=url, timeout=60) as client:  # max_concurrent_per_key is 1: the slot is free
            again = client.post("/v1/chat/completions", json=ask(), headers={"Authorization": f"Bearer {KEY_A}"})
    assert again.status_code == 200, again.text
    run = wait_for(lambda: (r := service.store.get_run(run_id).run).status != "running" and r, "the run to end")
    assert run.status in ("completed", "cancelled")


def _in_flight(service, label: str) -> int:
    from seasoned.models.sync import run_sync

    return run_sync(service.in_flight.in_flight(label))
