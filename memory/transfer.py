"""JSONL export/import: one line per item with its full version history (a lossless round trip).

An import file is untrusted: the whole file is read and checked before anything is written, then it is
written in one transaction (namespace rows included), so a refused file changes nothing. Accepted:
- ids (``item.id``, ``superseded_by``, ``versions[].item_id``): 1-64 characters of ``A-Z a-z 0-9 _ . : -``,
  starting with a letter or digit (``ID_PATTERN``);
- namespaces: 1-256 printable characters (no control, format or line-separator characters), without
  leading or trailing spaces;
- ``key`` and ``task_signature``: at most 512 printable characters; other text: valid Unicode;
- numbers: finite (no NaN/Infinity), ``utility`` in 0..1, counters >= 0, versions >= 1, all within int64;
- versions: unique per item, each naming the item it belongs to; ``key`` unique per namespace.

Hand-written lines may leave out ``format``, ``versions`` (one version is made from the item: "imported",
by a human) and every item field but ``content``; a bare item object (no ``"item"`` wrapper) is accepted too.
``into=NS`` copies every item into namespace ``NS`` under new ids (``superseded_by`` and the versions follow),
so an export can be imported beside the namespace it came from.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, ValidationError
from seasoned.errors import InvalidItemError
from seasoned.models import untrusted
from sqlalchemy import select

from .core import SNAPSHOT_FIELDS
from .db import ItemRow, NamespaceRow, VersionRow, retry_locked
from .items import ItemVersion, MemoryItem, describe_error, new_id, utcnow

if TYPE_CHECKING:
    from .bank import MemoryBank

FORMAT = "seasoned-memory/1"
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
MAX_NAMESPACE = 256
MAX_KEY = 512
MAX_JSON_DEPTH = 64


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
                item=MemoryItem.model_validate({f: getattr(row, f) for f in MemoryItem.model_fields}),
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
    for field in ("times_retrieved", "times_succeeded", "times_failed"):
        if getattr(item, field) < 0:
            raise ValueError(f"item.{field}: must be >= 0")
    if item.version < 1:
        raise ValueError("item.version: must be >= 1")
    seen: set[int] = set()
    for index, version in enumerate(record.versions):
        if version.item_id != item.id:
            raise ValueError(f"versions[{index}].item_id: {_shown(version.item_id)} is not this item's id "
                             f"{item.id!r}")
        if version.version < 1:
            raise ValueError(f"versions[{index}].version: must be >= 1")
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


def import_jsonl(bank: MemoryBank, path: str | Path, *, namespace: str | None, replace: bool,
                 into: str | None = None) -> dict[str, int]:
    """Insert the file's items (into ``namespace`` when given). Existing ids are skipped, or replaced
    with ``replace``; an id that lives in another namespace is an error. ``into``: copies under new ids
    into that namespace (nothing is skipped or replaced). All or nothing: one transaction holds the
    namespace rows, the items and their versions."""
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
    namespaces = sorted({r.item.namespace for r in records})

    def write() -> dict[str, int]:
        counts = {"imported": 0, "replaced": 0, "skipped": 0}
        with bank.db.write() as s:
            for ns in namespaces:
                if s.get(NamespaceRow, ns) is None:
                    s.add(NamespaceRow(namespace=ns, generation=0, created_at=utcnow()))
            s.flush()
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
                    s.delete(row)
                    s.execute(VersionRow.__table__.delete().where(VersionRow.item_id == item.id))
                    s.flush()
                    counts["replaced"] += 1
                else:
                    counts["imported"] += 1
                if item.key is not None:
                    holder = s.scalar(select(ItemRow.id).where(ItemRow.namespace == item.namespace,
                                                               ItemRow.key == item.key))
                    if holder is not None and holder != item.id:
                        raise InvalidItemError(
                            f"import: key {_shown(item.key)} of item {item.id} already belongs to item {holder} "
                            f"in namespace {item.namespace!r}; nothing was imported")
                s.add(ItemRow(**{f: getattr(item, f) for f in MemoryItem.model_fields}, indexed=False))
                for v in record.versions:
                    s.add(VersionRow(item_id=item.id, version=v.version, reason=v.reason, actor=v.actor,
                                     created_at=v.created_at, snapshot=v.snapshot))
            bank.bump(s, namespaces)
        return counts

    counts = retry_locked(write)
    bank.known_namespaces(namespaces)
    for ns in namespaces:
        bank.sync_index(ns)
    return counts
