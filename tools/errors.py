"""Temporary: the errors moved to ``seasoned.errors`` (this module goes once every import is updated)."""

from seasoned.errors import PathOutsideWorkspace, ToolError

__all__ = ["PathOutsideWorkspace", "ToolError"]
