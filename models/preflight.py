"""Configuration errors found before a run fans out its calls: ``await preflight(gateway, [judge_model])``.

A wrong setting used to surface as n failed samples and an answer of None. Checked here, once per run and
without a model call:
  - every model string is one the gateway can call (litellm knows the provider, the GGUF file exists, the
    scripted model is registered): ``providers.validate``;
  - a remote provider that needs an API key has one (``api_key=`` or the provider's variable);
  - the host a remote provider's calls go to accepts a connection (a TCP connect, retried a few times,
    remembered per process once it worked; skipped behind an HTTP proxy, where only the proxy is reached).

Each failure is a ``ModelConfigError`` whose one line names the setting at fault. A refused key, or a model
the provider does not know, is only learned from a call: the gateway raises ``ModelConfigError`` for those
(never retried), and the graphs end the run with it instead of recording failed candidates.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from seasoned.errors import ModelConfigError

from . import providers
from .gateway import Gateway, parse_model_spec

CONNECT_ATTEMPTS = 3
CONNECT_TIMEOUT_S = 3.0
CONNECT_PAUSE_S = 0.5  # doubled after each failed attempt
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")

_reachable: set[tuple[str, int]] = set()


async def preflight(gateway: Gateway, models: Iterable[str | None] = ()) -> None:
    """Check the gateway's model and ``models`` (a judge, a curator, allocation choices; None is skipped).
    Raises ``ModelConfigError`` naming the setting at fault."""
    api_base = gateway.default_params.get("api_base")
    api_key = gateway.default_params.get("api_key")
    for spec in dict.fromkeys([gateway.model, *(m for m in models if m)]):
        chain = parse_model_spec(spec)
        for name in chain:
            providers.validate(name)
        if len(chain) == 1 and providers.provider_of(chain[0]) not in providers.FREE_PROVIDERS:
            # a fallback chain may still answer from its other models: only single remote models are probed
            check_api_key(chain[0], api_key)
            await check_reachable(chain[0], api_base)


def check_api_key(model: str, api_key: str | None) -> None:
    """A remote model whose provider needs a key, with none given and none in the environment."""
    if api_key:
        return
    try:
        missing = providers.litellm().validate_environment(model=model).get("missing_keys") or []
    except Exception:  # noqa: BLE001 - litellm cannot tell for this provider: the first call will
        return
    keys = [k for k in missing if str(k).endswith("_API_KEY")]
    if keys:
        raise ModelConfigError(f"model {model!r}: no API key: set {' or '.join(keys)}, or pass api_key "
                               "(--api-key); a server that needs no key accepts any")


async def check_reachable(model: str, api_base: str | None) -> None:
    """The host behind the model's API base accepts a TCP connection (a few attempts)."""
    url = providers.api_base_used(model, api_base)
    if not url or any(os.environ.get(name) for name in PROXY_VARIABLES):
        return
    parts = urlsplit(url)
    if not parts.hostname:
        raise ModelConfigError(f"model {model!r}: api base {url!r} is not a URL ({_setting(model, api_base)})")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ModelConfigError(f"model {model!r}: api base {url!r} has a bad port ({_setting(model, api_base)})") from None
    if (parts.hostname, port) in _reachable:
        return
    problem = await asyncio.to_thread(_connect, parts.hostname, port)
    if problem is not None:
        raise ModelConfigError(f"model {model!r}: could not reach {url} ({_setting(model, api_base)}): {problem}")
    _reachable.add((parts.hostname, port))


def _setting(model: str, api_base: str | None) -> str:
    if api_base:
        return "api_base / --api-base"
    provider = providers.provider_of(model) or "openai"
    return f"{provider.upper()}_API_BASE, or api_base / --api-base"


def _connect(host: str, port: int) -> str | None:
    """None when a connection opens, else why not (after ``CONNECT_ATTEMPTS`` tries)."""
    pause, problem = CONNECT_PAUSE_S, ""
    for attempt in range(CONNECT_ATTEMPTS):
        try:
            with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
                return None
        except OSError as exc:
            problem = exc.strerror or type(exc).__name__
        if attempt + 1 < CONNECT_ATTEMPTS:
            time.sleep(pause)
            pause *= 2
    return f"{problem} ({CONNECT_ATTEMPTS} attempts)"


__all__ = ["check_api_key", "check_reachable", "preflight"]
