"""JSONL export/import: one line per item with its full version history (a lossless round trip)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import select

from .db import ItemRow, VersionRow, retry_locked
from .errors import InvalidItemError
from .items import ItemVersion, MemoryItem, describe_error

if TYPE_CHECKING:
    from .bank import MemoryBank

FORMAT = "seasoned-memory/1"


class Record(BaseModel):
    format: str = FORMAT
    item: MemoryItem
    versions: list[ItemVersion]


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


def read_records(path: str | Path) -> list[Record]:
    """Parse and validate the whole file before anything is written."""
    source = Path(path).expanduser()
    if not source.is_file():
        raise InvalidItemError(f"import: no such file {str(source)!r}")
    records: list[Record] = []
    seen: set[str] = set()
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InvalidItemError(f"import: {str(source)!r} is not a UTF-8 JSONL file") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data: Any = json.loads(line)
            record = Record.model_validate(data)
        except (ValueError, ValidationError) as err:
            detail = describe_error(err)
            raise InvalidItemError(f"import: {source.name} line {number}: {detail}") from None
        if record.format != FORMAT:
            raise InvalidItemError(f"import: {source.name} line {number}: unknown format {record.format!r}")
        if record.item.id in seen:
            raise InvalidItemError(f"import: {source.name} line {number}: duplicate id {record.item.id}")
        seen.add(record.item.id)
        records.append(record)
    return records


def import_jsonl(bank: MemoryBank, path: str | Path, *, namespace: str | None, replace: bool) -> dict[str, int]:
    """Insert the file's items (into ``namespace`` when given). Existing ids are skipped, or replaced
    with ``replace``; an id that lives in another namespace is an error. All or nothing."""
    records = read_records(path)
    if namespace is not None:
        for record in records:
            record.item.namespace = namespace
    for ns in {r.item.namespace for r in records}:
        bank._ensure_namespace(ns)

    def write() -> dict[str, int]:
        counts = {"imported": 0, "replaced": 0, "skipped": 0}
        with bank.db.write() as s:
            for record in records:
                item = record.item
                row = s.get(ItemRow, item.id)
                if row is not None:
                    if row.namespace != item.namespace:
                        raise InvalidItemError(
                            f"import: item {item.id} already exists in namespace {row.namespace!r}, "
                            f"not {item.namespace!r}; nothing was imported")
                    if not replace:
                        counts["skipped"] += 1
                        continue
                    s.delete(row)
                    s.execute(VersionRow.__table__.delete().where(VersionRow.item_id == item.id))
                    s.flush()
                    counts["replaced"] += 1
                else:
                    counts["imported"] += 1
                s.add(ItemRow(**{f: getattr(item, f) for f in MemoryItem.model_fields}, indexed=False))
                for v in record.versions:
                    s.add(VersionRow(item_id=item.id, version=v.version, reason=v.reason, actor=v.actor,
                                     created_at=v.created_at, snapshot=v.snapshot))
            bank._bump(s, {r.item.namespace for r in records})
        return counts

    counts = retry_locked(write)
    for ns in sorted({r.item.namespace for r in records}):
        bank.sync_index(ns)
    return counts
