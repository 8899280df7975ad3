"""API keys -> namespaces (the per-key limits are in ``slots`` and ``guards``).

With keys configured every endpoint needs ``Authorization: Bearer KEY`` (401 otherwise) and the key's
namespace is forced: naming another namespace is 403. Without keys (loopback only) the namespace is the
one the request names, or the server's default.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Request
from seasoned.errors import ApiError, MemoryConfigError
from seasoned.memory.bank import check_namespace

ANONYMOUS = "<loopback>"
UNAUTHENTICATED = "<no valid key>"


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
        token = _bearer(request.headers.get("authorization", ""))
        if token is None:
            raise ApiError(401, "missing API key: send 'Authorization: Bearer YOUR_KEY'", code="missing_api_key")
        found = self._lookup(token)
        if found is None:
            raise ApiError(401, "invalid API key", code="invalid_api_key")
        return found

    def _lookup(self, token: bytes) -> Caller | None:
        found = None
        for key, namespace, label in self._keys:
            if hmac.compare_digest(key, token) and found is None:
                found = Caller(label, namespace)
        return found

    def label_of(self, scope: dict) -> str:
        """The limits label of a request from its raw headers, never raising: the key's label, ANONYMOUS
        without keys, UNAUTHENTICATED for a missing or unknown key (all such requests share one bucket)."""
        if not self._keys:
            return ANONYMOUS
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        token = _bearer(header)
        found = self._lookup(token) if token is not None else None
        return found.label if found else UNAUTHENTICATED


def _bearer(header: str) -> bytes | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip().encode()
