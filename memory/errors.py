"""Errors the memory bank reports to people as one line (``str(err)``)."""

from seasoned.models.errors import SeasonedError


class MemoryError_(SeasonedError):
    """Base class of memory errors (named with a trailing underscore: ``MemoryError`` is a builtin)."""


class MemoryConfigError(MemoryError_, ValueError):
    """A database URL, Chroma URL, namespace or other memory setting is wrong (names the setting)."""


class ItemNotFound(MemoryError_, KeyError):
    """No item with this id in this namespace."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "item not found"


class ProtectedItemError(MemoryError_):
    """The curator tried to change a pinned or human-written item."""


class InvalidItemError(MemoryError_, ValueError):
    """An item, an edit or an imported line does not validate."""
