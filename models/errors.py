"""Temporary: the errors moved to ``seasoned.errors`` (this module goes once every import is updated)."""

from seasoned.errors import BudgetExceeded, ModelCallError, ModelConfigError, SeasonedError

__all__ = ["BudgetExceeded", "ModelCallError", "ModelConfigError", "SeasonedError"]
