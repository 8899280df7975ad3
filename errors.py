"""Every error seasoned reports to people, in one place (like ``langgraph.errors``).

Each error carries one clear line for people (``str(err)``) that names what is wrong. ``SeasonedError`` is the
base of all of them except ``ApiError``, which is the HTTP service's reply to a client (an OpenAI-style error
body with a status code). Nothing here imports the rest of seasoned: every layer may import it.
"""

from __future__ import annotations

from typing import Any


class SeasonedError(Exception):
    """Base class of every error seasoned reports to users as one line."""


class _KeyMessage:
    """For errors that are also ``KeyError``: ``str()`` is the message, not its quoted repr."""

    missing = "not found"

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else self.missing


# --- settings and models -------------------------------------------------------------------------
class SettingsError(SeasonedError, ValueError):
    """A ``SEASONED_*`` environment variable holds a value that cannot be used (the message names it)."""


class ModelConfigError(SeasonedError, ValueError):
    """A model string, GGUF path, API base or other model setting is wrong."""


class BudgetExceeded(SeasonedError):
    """A call was not made because it could exceed what is left of a budget."""

    def __init__(self, message: str, *, limit: str = "", requested: float = 0.0, remaining: float = 0.0):
        super().__init__(message)
        self.limit = limit
        self.requested = requested
        self.remaining = remaining


class ModelCallError(SeasonedError):
    """The provider failed (after retries, for transient errors)."""

    def __init__(self, message: str, *, transient: bool = False, status_code: int | None = None):
        super().__init__(message)
        self.transient = transient
        self.status_code = status_code


# --- memory --------------------------------------------------------------------------------------
class MemoryStoreError(SeasonedError):
    """Base class of the memory bank's errors."""


class MemoryConfigError(MemoryStoreError, ValueError):
    """A database URL, Chroma URL, namespace or other memory setting is wrong (names the setting)."""


class ItemNotFound(_KeyMessage, MemoryStoreError, KeyError):
    """No item with this id in this namespace."""

    missing = "item not found"


class ProtectedItemError(MemoryStoreError):
    """The curator tried to change a pinned or human-written item."""


class InvalidItemError(MemoryStoreError, ValueError):
    """An item, an edit or an imported line does not validate."""


class AdapterError(MemoryStoreError):
    """A LoRA adapter cannot be trained, stored or used here (the message says why: not a local model,
    too few verified items, a time or memory cap, a missing or damaged file)."""


class AdapterNotFound(_KeyMessage, AdapterError, KeyError):
    """No adapter with this id."""

    missing = "adapter not found"


# --- runs ----------------------------------------------------------------------------------------
class RunStoreError(SeasonedError):
    """Base class of run store errors (one line for people)."""


class RunNotFound(_KeyMessage, RunStoreError, KeyError):
    """No run with this id."""

    def __init__(self, run_id: str):
        super().__init__(f"run {run_id!r} not found (see `seasoned runs list`)")
        self.run_id = run_id


class CandidateNotFound(_KeyMessage, RunStoreError, KeyError):
    """No candidate with this id."""

    def __init__(self, candidate_id: str):
        super().__init__(f"candidate {candidate_id!r} not found")
        self.candidate_id = candidate_id


class RunNotResumable(SeasonedError):
    """A run cannot be resumed (unknown id, finished, or its checkpoint is gone)."""


# --- tools and environments ----------------------------------------------------------------------
class ToolError(SeasonedError, ValueError):
    """A tool was called with bad input (the message says what is wrong)."""


class PathOutsideWorkspace(ToolError):
    """A file path resolves outside the workspace (``..``, absolute path or symlink escape)."""


class EnvError(SeasonedError, ValueError):
    """Bad environment input: unknown env or task id, bad JSONL, missing repository..."""


class UnsafeDiff(EnvError):
    """A diff that writes where a candidate must not (``.git``, attributes, outside the tree)."""


# --- graphs --------------------------------------------------------------------------------------
class StrategyError(SeasonedError, ValueError):
    """A strategy name or setting that does not exist."""


class AllocationError(SeasonedError, ValueError):
    """An allocation policy name or setting that does not exist, or a budget it cannot split."""


class CheckerError(SeasonedError, TypeError):
    """A checker returned something that is not a bool, a number or a verdict."""


# --- the command line, the server, the benchmarks ------------------------------------------------
class CliUsageError(SeasonedError, ValueError):
    """A mistake in the command line: printed as one error line, exit code 2."""


class ServerConfigError(SeasonedError, ValueError):
    """A server setting is wrong or missing (the message names it)."""


class GridError(SeasonedError, ValueError):
    """A bad grid option (the message names the option) or a grid that could not finish."""


API_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "insufficient_budget",
                   403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                   429: "rate_limit_error", 502: "model_error", 503: "unavailable"}


class ApiError(Exception):
    """An error returned to the client as-is (status code, one clear message, the field at fault), in the
    OpenAI error format ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.extra = extra or {}

    def body(self) -> dict:
        error = {"message": self.message, "type": API_ERROR_TYPES.get(self.status, "api_error"),
                 "param": self.param, "code": self.code, **self.extra}
        return {"error": error}
