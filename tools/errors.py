"""Errors the tools raise (one clear line each)."""

from seasoned.models.errors import SeasonedError


class ToolError(SeasonedError, ValueError):
    """A tool was called with bad input (the message says what is wrong)."""


class PathOutsideWorkspace(ToolError):
    """A file path resolves outside the workspace (``..``, absolute path or symlink escape)."""
