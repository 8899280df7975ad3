"""Guards below the routes, against clients that hold the server's resources without using them.

Connection level (``guarded_protocol``, a subclass of uvicorn's HTTP protocol):
- a request's headers must be complete ``header_timeout`` seconds after the connection opened (or after
  the previous response ended); a slow sender is closed (slowloris);
- at most ``max_connections`` open connections: one more is answered 503 and closed at once;
- a response the client does not read (its send buffer stays full) for ``send_timeout`` seconds is
  aborted; the app then sees the disconnect, so an unread stream's run is cancelled and its slot freed.

Request level (``RequestGuard``, ASGI middleware):
- at most ``max_open_per_key`` requests open per API key (from their headers on, body reading included),
  one more is 429 before its body is read;
- the whole body must arrive within ``body_timeout`` seconds (408) and be at most ``max_body_bytes`` (413);
- a client that goes away while its body is read is one log line, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse
from seasoned.errors import ApiError
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("seasoned.server")


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    send_timeout: float
    max_connections: int


def _plain_response(status: int, reason: str, text: str) -> bytes:
    body = text.encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


def _peer(transport: Any) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "a client"


def guarded_protocol(base: type[asyncio.Protocol], limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """``base`` (uvicorn's H11Protocol or HttpToolsProtocol) with the connection guards above."""

    class Guarded(base):  # type: ignore[valid-type, misc]
        _header_timer: asyncio.TimerHandle | None = None
        _stall_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                log.warning("refused a connection from %s: %d connections are open (max_connections %d)",
                            _peer(transport), len(self.connections) - 1, limits.max_connections)
                transport.write(_plain_response(503, "Service Unavailable", "too many open connections"))
                transport.close()
                return
            self._arm_header_timer()

        def _arm_header_timer(self) -> None:
            self._cancel_header_timer()
            self._header_timer = self.loop.call_later(limits.header_timeout, self._headers_late)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            log.info("closed the connection from %s: no complete request within %g s (header_timeout)",
                     _peer(self.transport), limits.header_timeout)
            self.transport.write(_plain_response(408, "Request Timeout", "request headers took too long"))
            self.transport.abort()

        def data_received(self, data: bytes) -> None:
            cycle = self.cycle
            super().data_received(data)
            if self.cycle is not cycle:  # a new request's headers are complete
                self._cancel_header_timer()

        def on_response_complete(self) -> None:
            cycle = self.cycle
            super().on_response_complete()
            if self.cycle is cycle and not self.transport.is_closing():  # waiting for the next request
                self._arm_header_timer()

        def pause_writing(self) -> None:
            super().pause_writing()
            if self._stall_timer is None:
                self._stall_timer = self.loop.call_later(limits.send_timeout, self._send_stalled)

        def resume_writing(self) -> None:
            super().resume_writing()
            if self._stall_timer is not None:
                self._stall_timer.cancel()
                self._stall_timer = None

        def _send_stalled(self) -> None:
            self._stall_timer = None
            log.info("closed the connection to %s: it read nothing for %g s (send_timeout)",
                     _peer(self.transport), limits.send_timeout)
            self.transport.abort()  # connection_lost follows: the app sees the client gone

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_timer()
            if self._stall_timer is not None:
                self._stall_timer.cancel()
                self._stall_timer = None
            super().connection_lost(exc)

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded


class BodyTooLarge(Exception):
    pass


class BodyTimeout(Exception):
    pass


class RequestGuard:
    """Per-key open requests, body size and body deadline (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, label: Callable[[Scope], str], max_open_per_key: int,
                 max_body_bytes: int, body_timeout: float):
        self.app = app
        self.label = label
        self.max_open_per_key = max_open_per_key
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.open: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            await _refuse(send, ApiError(413, f"the request body is larger than this server accepts "
                                              f"({self.max_body_bytes} bytes)", code="request_too_large"))
            return
        label = self.label(scope)
        if self.open.get(label, 0) >= self.max_open_per_key:
            await _refuse(send, ApiError(429, f"too many open requests for this API key (max_open_per_key "
                                              f"{self.max_open_per_key}); retry when one has finished",
                                         code="too_many_connections"))
            return
        self.open[label] = self.open.get(label, 0) + 1
        try:
            await self._guarded(scope, receive, send)
        finally:
            self.open[label] -= 1
            if not self.open[label]:
                del self.open[label]

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        seen = 0
        body_done = scope.get("method") in ("GET", "HEAD", "DELETE", "OPTIONS")
        deadline = time.monotonic() + self.body_timeout
        started = False

        async def guarded_receive() -> Message:
            nonlocal seen, body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout() from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise BodyTooLarge()
                body_done = not message.get("more_body", False)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        client = scope.get("client") or ("a client", 0)
        try:
            await self.app(scope, guarded_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _refuse(send, ApiError(413, f"the request body is larger than this server accepts "
                                                  f"({self.max_body_bytes} bytes)", code="request_too_large"))
        except BodyTimeout:
            log.info("%s:%s did not send its request body within %g s (body_timeout): 408",
                     client[0], client[1], self.body_timeout)
            if not started:
                await _refuse(send, ApiError(408, f"the request body did not arrive within {self.body_timeout:g} s",
                                             code="request_timeout"))
        except ClientDisconnect:
            log.info("%s:%s went away before its request was read", client[0], client[1])


async def _refuse(send: Send, error: ApiError) -> None:
    response = JSONResponse(error.body(), status_code=error.status, headers={"connection": "close"})
    await send({"type": "http.response.start", "status": error.status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
