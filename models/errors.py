"""Errors the gateway raises. Each carries one clear line for people (``str(err)``)."""


class SeasonedError(Exception):
    """Base class of every error seasoned reports to users as one line."""


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
