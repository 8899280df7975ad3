"""API keys -> namespaces, and the per-key limit on requests in flight.

With keys configured every endpoint needs ``Authorization: Bearer KEY`` (401 otherwise) and the key's
namespace is forced: naming another namespace is 403. Without keys (loopback only) the namespace is the
one the request names, or the server's default.
"""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass

from fastapi import Request
from seasoned.errors import ApiError, MemoryConfigError
from seasoned.memory.bank import check_namespace

ANONYMOUS = "<loopback>"


@dataclass(frozen=True)
class Caller:
    """Who is asking: ``label`` identifies the key for limits (never the key itself); ``namespace`` is
    forced when keys are configured."""

    label: str
    namespace: str | None

    def namespace_for(self, requested: str | None, default: str, param: str = "namespace") -> str:
        if self.namespace is not None:
            if requested is not None and requested != self.namespace:
                raise ApiError(403, f"{param}: this API key may only use its own namespace", param=param)
            return self.namespace
        try:
            return check_namespace(requested if requested is not None else default)
        except MemoryConfigError as exc:
            raise ApiError(400, f"{param}: {exc}", param=param) from None


class KeyRing:
    """Looks a bearer token up among the configured keys (constant-time comparisons)."""

    def __init__(self, keys: dict[str, str]):
        self._keys = [(key.encode(), namespace, f"key-{index}") for index, (key, namespace)
                      in enumerate(sorted(keys.items()))]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def caller(self, request: Request) -> Caller:
        if not self._keys:
            return Caller(ANONYMOUS, None)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "missing API key: send 'Authorization: Bearer YOUR_KEY'", code="missing_api_key")
        given = token.strip().encode()
        found = None
        for key, namespace, label in self._keys:
            if hmac.compare_digest(key, given) and found is None:
                found = Caller(label, namespace)
        if found is None:
            raise ApiError(401, "invalid API key", code="invalid_api_key")
        return found


class InFlight:
    """At most ``limit`` requests in flight per key; one more is refused at once (429), never queued."""

    def __init__(self, limit: int):
        self.limit = limit
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, label: str) -> Slot:
        with self._lock:
            count = self._counts.get(label, 0)
            if count >= self.limit:
                raise ApiError(429, f"too many requests in flight for this API key (limit {self.limit}); "
                               "retry when one has finished", code="concurrency_limit")
            self._counts[label] = count + 1
        return Slot(self, label)

    def _release(self, label: str) -> None:
        with self._lock:
            self._counts[label] -= 1
            if not self._counts[label]:
                del self._counts[label]

    def in_flight(self, label: str) -> int:
        with self._lock:
            return self._counts.get(label, 0)


class Slot:
    """One request's place; ``release`` is idempotent."""

    def __init__(self, owner: InFlight, label: str):
        self._owner = owner
        self._label = label
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._owner._release(self._label)
