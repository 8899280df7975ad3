"""What a provider failure means: worth retrying or not (``is_transient``), and the one clear error line
that names the setting at fault (``describe_failure``). litellm loads on first use."""

from __future__ import annotations

import asyncio

from seasoned.errors import ModelCallError, ModelConfigError, SeasonedError

from . import providers

TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 529}


def _status_code(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, int) else None


AUTH_FAILURES = ("missing credentials", "api_key client option must be set", "no api key", "invalid api key",
                 "incorrect api key", "invalid x-api-key", "unauthorized")


def is_auth_failure(exc: BaseException) -> bool:
    """A missing or refused key: retrying cannot help. litellm reports a missing key as a 500
    ("OpenAIException - Missing credentials"), so the message is looked at too."""
    import litellm

    if isinstance(exc, (litellm.AuthenticationError, litellm.PermissionDeniedError)):
        return True
    if _status_code(exc) in (401, 403):
        return True
    text = str(exc).lower()
    return any(marker in text for marker in AUTH_FAILURES)


def is_transient(exc: BaseException) -> bool:
    """Timeouts, rate limits, 5xx and connection errors are worth retrying; other 4xx, and a missing or
    refused API key (whatever status it comes with), are not."""
    import litellm

    if is_auth_failure(exc):
        return False
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, ConnectionError)):
        return True
    transient_types = (litellm.Timeout, litellm.RateLimitError, litellm.APIConnectionError,
                       litellm.InternalServerError, litellm.ServiceUnavailableError, litellm.BadGatewayError)
    if isinstance(exc, transient_types):
        return True
    code = _status_code(exc)
    return code in TRANSIENT_STATUS if code is not None else False


def is_timeout(exc: BaseException) -> bool:
    """The provider got the request but did not answer in time (our deadline or its own)."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return True
    import litellm

    return isinstance(exc, litellm.Timeout) or _status_code(exc) == 408


def one_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = text.replace("litellm.", "")
    name = type(exc).__name__ + ": "
    while text.startswith(name + name):  # litellm repeats the class name when it re-wraps an error
        text = text[len(name):]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_connection_failure(exc: BaseException) -> bool:
    import litellm

    if isinstance(exc, (litellm.APIConnectionError, ConnectionError)):
        return True
    return "connection error" in str(exc).lower() or "connecterror" in repr(exc.__cause__).lower()


def describe_failure(model: str, exc: BaseException, api_base: str | None) -> SeasonedError:
    """Turn a provider exception into one clear line that names the setting at fault."""
    import litellm

    if isinstance(exc, SeasonedError):
        return exc
    detail = one_line(exc)
    if is_auth_failure(exc):
        where = providers.api_base_used(model, api_base)
        at = f" at {where}" if where else ""
        return ModelConfigError(f"model {model!r}: authentication failed{at}; set the provider's API key "
                                f"(api_key=, or e.g. OPENAI_API_KEY, ANTHROPIC_API_KEY) ({detail})")
    if isinstance(exc, litellm.NotFoundError):
        return ModelConfigError(f"model {model!r}: the provider does not know this model ({detail})")
    if _is_connection_failure(exc):
        used = providers.api_base_used(model, api_base)
        where = (f"{used} (api_base / *_API_BASE)" if used
                 else "the provider's API base (api_base / *_API_BASE)")
        return ModelCallError(f"model {model!r}: could not reach {where} ({detail})", transient=True)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, litellm.Timeout)):
        return ModelCallError(f"model {model!r}: timed out ({detail})", transient=True, status_code=408)
    return ModelCallError(f"model {model!r}: {detail}", transient=is_transient(exc), status_code=_status_code(exc))


__all__ = ["AUTH_FAILURES", "TRANSIENT_STATUS", "describe_failure", "is_auth_failure", "is_timeout", "is_transient",
           "one_line"]
