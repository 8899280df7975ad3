"""Pydantic types of the public API: items, versions, add results, retrieval hits."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Kind = Literal["strategy", "cheatsheet", "lesson", "code", "behavior", "allocation", "note", "demonstration"]
KINDS: tuple[str, ...] = ("strategy", "cheatsheet", "lesson", "code", "behavior", "allocation", "note",
                          "demonstration")
#: Distilled kinds: given to a model as notes in its system message.
NOTE_KINDS: tuple[str, ...] = ("strategy", "cheatsheet", "lesson", "code", "behavior")
Source = Literal["success", "failure", "human"]
Status = Literal["active", "archived", "superseded"]
Actor = Literal["curator", "human", "system"]

#: Fields a person (or the curator) may change through ``edit``; the rest is bookkeeping.
EDITABLE_FIELDS: tuple[str, ...] = ("title", "content", "kind", "tags", "task_signature", "data", "verified")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive: they were written in UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def describe_error(err: Exception) -> str:
    """One line from a pydantic ValidationError (field: message), else the first line of the error."""
    errors = getattr(err, "errors", None)
    if callable(errors):
        with contextlib.suppress(Exception):  # any error's `errors` attribute: fall back to its text
            first = errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "value"
            return f"{where}: {first.get('msg', 'invalid')}"
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def new_id() -> str:
    return uuid.uuid4().hex


#: The most a use counter (``times_*``) or a version number holds: counters saturate here, an import refuses
#: more, so no increment or sum over a namespace ever leaves int64 (SQLite turns an overflow into a float).
#: The columns are SQL INTEGER, 32 bits on PostgreSQL: a larger bound fails every counter update there.
MAX_COUNT = 2**31 - 1
COUNTERS: tuple[str, ...] = ("times_retrieved", "times_succeeded", "times_failed")


def bounded_count(value: Any) -> int:
    """A stored counter as an int in 0..MAX_COUNT (a row written before counters saturated may hold more,
    or the float SQLite made of an overflow)."""
    try:
        return min(max(int(value), 0), MAX_COUNT)
    except (TypeError, ValueError, OverflowError):  # NaN, infinity, garbage: no evidence
        return 0


def utility_of(succeeded: int, failed: int) -> float:
    """Laplace-smoothed success rate: 0.5 with no evidence, towards 1 with successes, 0 with failures."""
    return (succeeded + 1) / (succeeded + failed + 2)


class MemoryItem(BaseModel):
    """One unit of experience. ``content`` is what gets embedded (with the title)."""

    model_config = ConfigDict(validate_assignment=True)

    id: str = Field(default_factory=new_id)
    namespace: str = "default"
    kind: Kind = "strategy"
    title: str = ""
    content: str
    tags: list[str] = Field(default_factory=list)
    task_signature: str = ""
    data: dict[str, Any] | None = None  # structured payload: allocation records, LangGraph store values
    key: str | None = None  # LangGraph store key (unique per namespace) when written through the store
    # provenance
    source: Source = "success"
    run_ids: list[str] = Field(default_factory=list)
    verified: bool = False
    pinned: bool = False
    # lifecycle
    status: Status = "active"
    superseded_by: str | None = None
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # utility statistics
    times_retrieved: int = 0
    times_succeeded: int = 0
    times_failed: int = 0
    utility: float = 0.5
    last_used_at: datetime | None = None

    @field_validator("content")
    @classmethod
    def _content_not_empty(cls, value: str) -> str:
        if not value or not value.strip():
            raise ValueError("content must not be empty")
        return value

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, value: list[str]) -> list[str]:
        seen: list[str] = []
        for tag in value:
            tag = str(tag).strip()
            if tag and tag not in seen:
                seen.append(tag)
        return seen

    @field_validator("created_at", "updated_at", "last_used_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return as_utc(value)

    @property
    def protected(self) -> bool:
        """Pinned or human-written: the curator never overwrites it."""
        return self.pinned or self.source == "human"

    def embed_text(self) -> str:
        return f"{self.title}\n{self.content}" if self.title else self.content


class ItemVersion(BaseModel):
    """A snapshot of an item after one change, with why it changed."""

    item_id: str
    version: int
    reason: str
    actor: str
    created_at: datetime
    snapshot: dict[str, Any]

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)  # type: ignore[return-value]


class Action(str, Enum):
    ADD = "ADD"
    UPDATE = "UPDATE"
    NOOP = "NOOP"


class AddResult(BaseModel):
    """What ``add`` did: the stored item (new, merged into, or left as it was) and why."""

    action: Action
    item: MemoryItem
    reason: str = ""
    similarity: float | None = None
    superseded: list[str] = Field(default_factory=list)  # ids the new item contradicted


class Retrieved(BaseModel):
    """A retrieval hit: the item, its final score and the parts the score is made of."""

    item: MemoryItem
    score: float
    parts: dict[str, float]
