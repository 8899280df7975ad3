"""JSONL export/import: one line per item with its full version history (a lossless round trip).

An import file is untrusted: the whole file is read and checked before anything is written, then it is
written in one transaction (namespace rows included), so a refused file changes nothing. Accepted:
- ids (``item.id``, ``superseded_by``, ``versions[].item_id``): 1-64 characters of ``A-Z a-z 0-9 _ . : -``,
  starting with a letter or digit (``ID_PATTERN``);
- namespaces: 1-256 printable characters (no control, format or line-separator characters), without
  leading or trailing spaces;
- ``key`` and ``task_signature``: at most 512 printable characters; other text: valid Unicode;
- numbers: finite (no NaN/Infinity), ``utility`` in 0..1, counters and versions from 0 (versions from 1)
  to ``MAX_COUNT`` (room for every later increment, and for sums over a namespace, within int64);
- versions: unique per item, each naming the item it belongs to; ``key`` unique per namespace.

What a file says is not trusted as a check: every imported item is stored unverified (a ``verified`` flag
in the file adds a version saying so), until outcomes in this namespace confirm it (``record_outcome``) or a
checked run stores it anew. Importing the same items again adds nothing, as ``add`` would not: an item
whose kind and content (spacing and case aside) an active item of the namespace already has, or an earlier
line of the file, is merged into that item (its runs join the item's), with or without ids, with or
without ``into``; an allocation record is the same record only with the same data and runs.

Hand-written lines may leave out ``format``, ``versions`` (one version is made from the item: "imported",
by a human) and every item field but ``content``; a bare item object (no ``"item"`` wrapper) is accepted too.
``into=NS`` copies every item into namespace ``NS`` under new ids (``superseded_by`` and the versions follow),
so an export can be imported beside the namespace it came from.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError
from seasoned.errors import InvalidItemError
from seasoned.models import untrusted
from sqlalchemy import select
from sqlalchemy.orm import Session

from .core import SNAPSHOT_FIELDS, row_to_item
from .db import ItemRow, NamespaceRow, VersionRow, retry_locked
from .items import COUNTERS, MAX_COUNT, ItemVersion, MemoryItem, describe_error, new_id, utcnow
from .merge import normalized

if TYPE_CHECKING:
    from .bank import MemoryBank

FORMAT = "seasoned-memory/1"
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
MAX_NAMESPACE = 256
MAX_KEY = 512
MAX_JSON_DEPTH = 64
UNVERIFIED = "imported: unverified until checked in this namespace"


class Record(BaseModel):
    format: str = FORMAT
    item: MemoryItem
    versions: list[ItemVersion] = Field(default_factory=list)  # hand-written lines: made by _default_versions



def _default_versions(record: Record) -> None:
    """A line without versions gets the one version the item's fields describe."""
    if not record.versions:
        item = record.item
        record.versions = [ItemVersion(item_id=item.id, version=item.version, reason="imported", actor="human",
                                       created_at=item.updated_at,
                                       snapshot=item.model_dump(mode="json", include=set(SNAPSHOT_FIELDS)))]


def _renumber(records: list[Record], namespace: str) -> None:
    """Every record moved to ``namespace`` under a new id; references between them follow."""
    ids = {record.item.id: new_id() for record in records}
    for record in records:
        item = record.item
        item.id, item.namespace = ids[item.id], namespace
        if item.superseded_by is not None:
            item.superseded_by = ids.get(item.superseded_by)
        for version in record.versions:
            version.item_id = item.id
            if version.snapshot.get("superseded_by") is not None:
                version.snapshot = {**version.snapshot, "superseded_by": ids.get(version.snapshot["superseded_by"])}


def export_jsonl(bank: MemoryBank, path: str | Path, namespace: str | None) -> int:
    """Write the items of ``namespace`` (all namespaces when None); returns the number of items."""
    target = Path(path).expanduser()
    if not target.parent.is_dir():
        raise InvalidItemError(f"export: directory {str(target.parent)!r} does not exist")
    query = select(ItemRow)
    if namespace is not None:
        query = query.where(ItemRow.namespace == namespace)
    count = 0
    tmp = target.with_name(target.name + ".part")
    with bank.db.read() as s, tmp.open("w", encoding="utf-8") as out:
        for row in s.scalars(query.order_by(ItemRow.namespace, ItemRow.created_at, ItemRow.id)):
            versions = s.scalars(select(VersionRow).where(VersionRow.item_id == row.id).order_by(VersionRow.version))
            record = Record(
                item=row_to_item(row),
                versions=[ItemVersion(item_id=v.item_id, version=v.version, reason=v.reason, actor=v.actor,
                                      created_at=v.created_at, snapshot=v.snapshot) for v in versions],
            )
            out.write(record.model_dump_json() + "\n")
            count += 1
    tmp.replace(target)  # a reader never sees half a file
    return count


def check_id(value: str | None, field: str) -> None:
    if value is not None and not (isinstance(value, str) and ID_PATTERN.fullmatch(value)):
        raise ValueError(f"{field}: {_shown(value)} is not a valid id (1-64 characters of A-Z a-z 0-9 _ . : -, "
                         "starting with a letter or digit)")


def check_namespace_name(value: str, field: str = "namespace") -> None:
    if (not isinstance(value, str) or not 1 <= len(value) <= MAX_NAMESPACE or not value.isprintable()
            or value != value.strip()):
        raise ValueError(f"{field}: {_shown(value)} is not a valid namespace (1-{MAX_NAMESPACE} printable "
                         "characters, no control characters, no leading or trailing spaces)")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_record(record: Record) -> None:
    """What pydantic does not check but SQL, the index or a later read would trip on; ``ValueError``."""
    item = record.item
    check_id(item.id, "item.id")
    check_id(item.superseded_by, "item.superseded_by")
    check_namespace_name(item.namespace, "item.namespace")
    for field in ("key", "task_signature"):
        value = getattr(item, field)
        if value is not None and (len(value) > MAX_KEY or not value.isprintable()):
            raise ValueError(f"item.{field}: at most {MAX_KEY} printable characters")
    if not (math.isfinite(item.utility) and 0.0 <= item.utility <= 1.0):
        raise ValueError(f"item.utility: must be a number from 0 to 1, got {item.utility}")
    for field in COUNTERS:
        if not 0 <= getattr(item, field) <= MAX_COUNT:
            raise ValueError(f"item.{field}: must be from 0 to {MAX_COUNT}, got {_shown(getattr(item, field))}")
    if not 1 <= item.version <= MAX_COUNT:
        raise ValueError(f"item.version: must be from 1 to {MAX_COUNT}, got {_shown(item.version)}")
    seen: set[int] = set()
    for index, version in enumerate(record.versions):
        if version.item_id != item.id:
            raise ValueError(f"versions[{index}].item_id: {_shown(version.item_id)} is not this item's id "
                             f"{item.id!r}")
        if not 1 <= version.version <= MAX_COUNT:
            raise ValueError(f"versions[{index}].version: must be from 1 to {MAX_COUNT}")
        if version.version in seen:
            raise ValueError(f"versions[{index}].version: version {version.version} appears twice")
        seen.add(version.version)
        if len(version.actor) > 16:
            raise ValueError(f"versions[{index}].actor: at most 16 characters")


def read_records(path: str | Path) -> list[Record]:
    """Parse and validate the whole file before anything is written (see the module docstring)."""
    source = Path(path).expanduser()
    if not source.is_file():
        raise InvalidItemError(f"import: no such file {str(source)!r}")
    records: list[Record] = []
    seen: set[str] = set()
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InvalidItemError(f"import: {str(source)!r} is not a UTF-8 JSONL file") from None
    except OSError as err:
        raise InvalidItemError(f"import: cannot read {str(source)!r}: {err.strerror or err}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"import: {source.name} line {number}"
        try:
            data = untrusted.loads(line, max_depth=MAX_JSON_DEPTH, allow_nan=False)
            untrusted.check_tree(data, path="record", max_depth=MAX_JSON_DEPTH)
            if isinstance(data, dict) and "item" not in data and "content" in data:
                data = {"item": data}  # a bare item written by hand
            record = Record.model_validate(data)
            _default_versions(record)
        except (ValueError, ValidationError) as err:
            raise InvalidItemError(f"{where}: {describe_error(err)}") from None
        if record.format != FORMAT:
            raise InvalidItemError(f"{where}: unknown format {record.format!r}")
        try:
            _check_record(record)
        except ValueError as err:
            raise InvalidItemError(f"{where}: {err}") from None
        if record.item.id in seen:
            raise InvalidItemError(f"{where}: duplicate id {record.item.id}")
        seen.add(record.item.id)
        records.append(record)
    keys: set[tuple[str, str]] = set()
    for record in records:
        if record.item.key is not None:
            if (record.item.namespace, record.item.key) in keys:
                raise InvalidItemError(f"import: {source.name}: key {_shown(record.item.key)} is used twice in "
                                       f"namespace {record.item.namespace!r}")
            keys.add((record.item.namespace, record.item.key))
    return records


def _unverified(record: Record) -> None:
    """A ``verified`` flag in a file is not a check made here: the item is stored unverified, with a version
    saying why its flag changed."""
    item = record.item
    if not item.verified:
        return
    item.verified = False
    item.version = max([item.version, *(v.version for v in record.versions)]) + 1
    record.versions.append(ItemVersion(item_id=item.id, version=item.version, reason=UNVERIFIED, actor="system",
                                       created_at=utcnow(),
                                       snapshot=item.model_dump(mode="json", include=set(SNAPSHOT_FIELDS))))


def _identity(kind: str, status: str, content: str, data: Any, run_ids: list[str]) -> tuple:
    """What makes two items the same item on import: kind and content (as duplicates are compared on
    add); an allocation record also by its data and runs (two runs may record the same text)."""
    same = (kind, status, normalized(content))
    if kind == "allocation":
        return (*same, json.dumps(data, sort_keys=True, default=str), tuple(run_ids))
    return same


class _Stored:
    """The items of the target namespaces by identity: those stored before the import (read once per
    namespace) and those this import inserts."""

    def __init__(self, session: Session):
        self.session = session
        self.by_namespace: dict[str, dict[tuple, ItemRow | str]] = {}

    def _of(self, namespace: str) -> dict[tuple, ItemRow | str]:
        if namespace not in self.by_namespace:
            rows = self.session.execute(select(ItemRow.id, ItemRow.kind, ItemRow.status, ItemRow.content,
                                               ItemRow.data, ItemRow.run_ids)
                                        .where(ItemRow.namespace == namespace).order_by(ItemRow.created_at))
            found: dict[tuple, ItemRow | str] = {}
            for row_id, *fields in rows:
                found.setdefault(_identity(*fields), row_id)
            self.by_namespace[namespace] = found
        return self.by_namespace[namespace]

    def same_as(self, item: MemoryItem) -> ItemRow | None:
        """The stored row that already holds ``item`` (merged into, not added), else None."""
        known = self._of(item.namespace).get(
            _identity(item.kind, item.status, item.content, item.data, item.run_ids))
        if isinstance(known, str):
            known = self.session.get(ItemRow, known)
        return known

    def add(self, row: ItemRow) -> None:
        self._of(row.namespace).setdefault(
            _identity(row.kind, row.status, row.content, row.data, row.run_ids), row)

    def forget(self, row_id: str, namespace: str) -> None:
        known = self._of(namespace)
        for identity in [i for i, held in known.items() if held == row_id or getattr(held, "id", None) == row_id]:
            del known[identity]


def import_jsonl(bank: MemoryBank, path: str | Path, *, namespace: str | None, replace: bool,
                 into: str | None = None) -> dict[str, int]:
    """Insert the file's items (into ``namespace`` when given), unverified. Existing ids are skipped, or
    replaced with ``replace``; an id that lives in another namespace is an error. ``into``: copies under
    new ids into that namespace. An item the namespace already holds (same kind and content) is merged
    into it, not added (see the module's docstring). All or nothing: one transaction holds the namespace
    rows, the items and their versions."""
    for value, flag in ((namespace, "--namespace"), (into, "--into")):
        if value is not None:
            try:
                check_namespace_name(value, flag)
            except ValueError as err:
                raise InvalidItemError(f"import: {err}") from None
    records = read_records(path)
    if into is not None:
        _renumber(records, into)
    elif namespace is not None:
        for record in records:
            record.item.namespace = namespace
    for record in records:
        _unverified(record)
    namespaces = sorted({r.item.namespace for r in records})

    def write() -> dict[str, int]:
        counts = {"imported": 0, "merged": 0, "replaced": 0, "skipped": 0}
        with bank.db.write() as s:
            for ns in namespaces:
                if s.get(NamespaceRow, ns) is None:
                    s.add(NamespaceRow(namespace=ns, generation=0, created_at=utcnow()))
            s.flush()
            stored, merged_into, inserted = _Stored(s), {}, []
            for record in records:
                item = record.item
                row = s.get(ItemRow, item.id)
                if row is not None:
                    if row.namespace != item.namespace:
                        raise InvalidItemError(
                            f"import: item {item.id} already exists in namespace {row.namespace!r}, "
                            f"not {item.namespace!r}; nothing was imported (--into {item.namespace} copies "
                            "the items under new ids)")
                    if not replace:
                        counts["skipped"] += 1
                        continue
                    stored.forget(row.id, row.namespace)
                    s.delete(row)
                    s.execute(VersionRow.__table__.delete().where(VersionRow.item_id == item.id))
                    s.flush()
                    counts["replaced"] += 1
                else:
                    same = stored.same_as(item)
                    if same is not None:  # as add does with a duplicate: the runs join, nothing is added
                        same.run_ids = list(dict.fromkeys([*same.run_ids, *item.run_ids]))
                        merged_into[item.id] = same.id
                        counts["merged"] += 1
                        continue
                    counts["imported"] += 1
                if item.key is not None:
                    holder = s.scalar(select(ItemRow.id).where(ItemRow.namespace == item.namespace,
                                                               ItemRow.key == item.key))
                    if holder is not None and holder != item.id:
                        raise InvalidItemError(
                            f"import: key {_shown(item.key)} of item {item.id} already belongs to item {holder} "
                            f"in namespace {item.namespace!r}; nothing was imported")
                row = ItemRow(**{f: getattr(item, f) for f in MemoryItem.model_fields}, indexed=False)
                s.add(row)
                stored.add(row)
                inserted.append(row)
                for v in record.versions:
                    s.add(VersionRow(item_id=item.id, version=v.version, reason=v.reason, actor=v.actor,
                                     created_at=v.created_at, snapshot=v.snapshot))
            for row in inserted:  # a superseding item that was merged: point at what it merged into
                if row.superseded_by in merged_into:
                    row.superseded_by = merged_into[row.superseded_by]
            bank.bump(s, namespaces)
        return counts

    counts = retry_locked(write)
    bank.known_namespaces(namespaces)
    for ns in namespaces:
        bank.sync_index(ns)
    return counts
