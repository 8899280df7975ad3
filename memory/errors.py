"""Temporary: the errors moved to ``seasoned.errors`` (this module goes once every import is updated)."""

from seasoned.errors import InvalidItemError, ItemNotFound, MemoryConfigError, ProtectedItemError
from seasoned.errors import MemoryStoreError as MemoryError_

__all__ = ["InvalidItemError", "ItemNotFound", "MemoryConfigError", "MemoryError_", "ProtectedItemError"]
