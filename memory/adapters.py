"""LoRA adapters as versioned memory items: one SQL row + one llama.cpp adapter GGUF under SEASONED_HOME.

An adapter is experience in the weights of a local model (``local/...``): trained on a namespace's verified
replies (``memory/training.py``), it is keyed by namespace, model string, the base GGUF's sha256 digest and
scope (an environment's name, or ``general``). Its status moves ``candidate`` (trained, not yet checked) ->
``active`` (passed its held-out check: served) or ``rejected`` (kept for inspection, never served); an
active adapter becomes ``retired`` when a newer one of its key passes. At most one is active per key.

    store = AdapterStore(bank.db)                              # files under $SEASONED_HOME/adapters
    adapter = store.active("math", "local/smollm2-135m", "addition")   # None when there is none
    adapter.path                                               # give it to the local provider

Crash safety: the file is written under a temporary name, fsynced and renamed before its row is committed,
so a row never names a half-written file; a file whose row never committed is an orphan that nothing reads
(``sweep_orphans`` removes it). ``active`` serves a row only when its file exists with the sha256 recorded at
write time, and only for the base model digest it was trained on: an adapter never reaches another model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from seasoned.errors import AdapterError, AdapterNotFound
from seasoned.settings import seasoned_home
from sqlalchemy import JSON, DateTime, Float, Index, Integer, String, Text, delete, func, select, update
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base, Database, retry_locked
from .items import as_utc, new_id, utcnow

log = logging.getLogger(__name__)

STATUSES: tuple[str, ...] = ("candidate", "active", "rejected", "retired")
LOCAL_PREFIX = "local/"


class AdapterRow(Base):
    __tablename__ = "memory_adapters"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(256))
    model: Mapped[str] = mapped_column(String(256))
    base_digest: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    path: Mapped[str | None] = mapped_column(String(1024), nullable=True)  # relative to the adapters folder
    file_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    file_bytes: Mapped[int] = mapped_column(Integer, default=0)
    train_items: Mapped[int] = mapped_column(Integer, default=0)
    item_ids: Mapped[dict] = mapped_column(JSON, default=dict)  # {"train": [...], "heldout": [...]}
    demos_seen: Mapped[int] = mapped_column(Integer, default=0)  # eligible demonstrations when trained
    train_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    peak_rss_mb: Mapped[float] = mapped_column(Float, default=0.0)
    check: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # the held-out check's figures
    params: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # rank, alpha, epochs, seed, ...
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_memory_adapters_key", "namespace", "model", "scope", "status"),)


@dataclass
class Adapter:
    """One adapter as users see it (``path``: the absolute file, None when it has none)."""

    id: str
    namespace: str
    model: str
    base_digest: str
    scope: str
    status: str
    version: int
    path: Path | None
    file_sha256: str | None
    file_bytes: int = 0
    train_items: int = 0
    item_ids: dict = field(default_factory=dict)
    demos_seen: int = 0
    train_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    check: dict | None = None
    params: dict | None = None
    reason: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path) if self.path else None
        return data


# --- the base model's identity ------------------------------------------------------------------------
def local_model_name(model: str) -> str:
    """``local/smollm2-135m`` -> ``smollm2-135m``; an ``AdapterError`` for any other provider."""
    if not isinstance(model, str) or not model.startswith(LOCAL_PREFIX) or len(model) <= len(LOCAL_PREFIX):
        raise AdapterError(f"adapters are trained and served for local models (local/...) only, not {model!r}: "
                           "an API model has no weights here (use its provider's fine-tuning API)")
    return model[len(LOCAL_PREFIX):]


def file_sha256(path: Path) -> str:
    """sha256 of a file, computed once per (path, mtime, size) (the local provider's own cache)."""
    from seasoned.models.local_adapters import file_digest

    return file_digest(path)


def base_digest(model: str) -> str:
    """The sha256 of the GGUF file behind a ``local/...`` model string: what an adapter is tied to (the
    digest the local provider checks an adapter's ``seasoned.base_digest`` against)."""
    from seasoned.models.local import model_digest

    return model_digest(local_model_name(model))


def _folder_name(namespace: str) -> str:
    """A safe folder name for a namespace (any printable text): readable part + hash, never a path."""
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", namespace)[:48].strip(".") or "ns"
    return f"{readable}-{hashlib.sha256(namespace.encode()).hexdigest()[:10]}"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AdapterStore:
    """The adapters of one database (rows) and one folder (files, default ``$SEASONED_HOME/adapters``)."""

    def __init__(self, db: Database, root: str | Path | None = None):
        self.db = db
        self._root = Path(root) if root is not None else None

    @property
    def root(self) -> Path:
        return self._root if self._root is not None else seasoned_home() / "adapters"

    # --- writing ------------------------------------------------------------------------------------
    def add(self, write: Callable[[Path], None], *, namespace: str, model: str, digest: str, scope: str,
            status: str = "candidate", **fields: Any) -> Adapter:
        """A new version of the (namespace, model, digest, scope) adapter: ``write(path)`` writes the GGUF to
        a temporary path; it is fsynced and renamed into place, then the row is committed (``fields``:
        the row's figures). A failure at any step leaves no row, and no file under the final name."""
        _check_status(status)
        adapter_id = new_id()
        folder = self.root / _folder_name(namespace)
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{adapter_id}.gguf"
        temporary = folder / f".{adapter_id}.gguf.tmp-{os.getpid()}"
        try:
            write(temporary)
            with temporary.open("rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(temporary, final)
            _fsync_dir(folder)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        try:
            return self._insert(adapter_id, final, namespace=namespace, model=model, digest=digest, scope=scope,
                                status=status, **fields)
        except BaseException:
            final.unlink(missing_ok=True)  # no row names it: nothing may be left under the final name
            raise

    def _insert(self, adapter_id: str, final: Path, *, namespace: str, model: str, digest: str, scope: str,
                status: str, **fields: Any) -> Adapter:
        sha, size = file_sha256(final), final.stat().st_size
        relative = str(final.relative_to(self.root))

        def write() -> Adapter:
            with self.db.write() as s:
                row = self._new_row(s, id=adapter_id, namespace=namespace, model=model, base_digest=digest,
                                    scope=scope, status="candidate", path=relative, file_sha256=sha, file_bytes=size,
                                    **fields)
                if status != "candidate":
                    self._set(s, row, status)
                return self._adapter(row)

        return retry_locked(write)

    def record_failure(self, *, namespace: str, model: str, digest: str, scope: str, reason: str,
                       **fields: Any) -> Adapter:
        """A training that produced no usable file (a cap, too few items, an error): a ``rejected`` row with
        the reason and no file, so the trigger does not retry it until more verified items arrive."""
        def write() -> Adapter:
            with self.db.write() as s:
                return self._adapter(self._new_row(
                    s, id=new_id(), namespace=namespace, model=model, base_digest=digest, scope=scope,
                    status="rejected", path=None, file_sha256=None, file_bytes=0, reason=reason[:2000], **fields))

        return retry_locked(write)

    @staticmethod
    def _new_row(s: Any, **fields: Any) -> AdapterRow:
        """A row with the next version of its key (namespace, model, scope, base digest), flushed."""
        version = (s.scalar(select(func.max(AdapterRow.version)).where(
            AdapterRow.namespace == fields["namespace"], AdapterRow.model == fields["model"],
            AdapterRow.scope == fields["scope"], AdapterRow.base_digest == fields["base_digest"])) or 0) + 1
        now = utcnow()
        row = AdapterRow(version=version, created_at=now, updated_at=now, **fields)
        s.add(row)
        s.flush()
        return row

    def set_status(self, adapter_id: str, status: str, *, check: dict | None = None, reason: str | None = None,
                   train_seconds: float | None = None, peak_rss_mb: float | None = None) -> Adapter:
        """Move an adapter to ``status`` (activating one retires the active one of its key, atomically),
        with its check's figures and final measurements when given."""
        _check_status(status)

        def write() -> Adapter:
            with self.db.write() as s:
                row = s.get(AdapterRow, adapter_id)
                if row is None:
                    raise AdapterNotFound(f"no adapter {adapter_id!r}")
                if check is not None:
                    row.check = check
                if reason is not None:
                    row.reason = reason[:2000]
                if train_seconds is not None:
                    row.train_seconds = train_seconds
                if peak_rss_mb is not None:
                    row.peak_rss_mb = peak_rss_mb
                self._set(s, row, status)
                return self._adapter(row)

        return retry_locked(write)

    def _set(self, s: Any, row: AdapterRow, status: str) -> None:
        if status == "active":
            if not row.path:
                raise AdapterError(f"adapter {row.id} has no file: it cannot be activated")
            s.execute(update(AdapterRow).where(
                AdapterRow.namespace == row.namespace, AdapterRow.model == row.model, AdapterRow.scope == row.scope,
                AdapterRow.base_digest == row.base_digest, AdapterRow.status == "active", AdapterRow.id != row.id,
            ).values(status="retired", updated_at=utcnow()))
        row.status = status
        row.updated_at = utcnow()

    def delete(self, adapter_id: str) -> Adapter:
        """Remove the row, then its file (a crash in between leaves an orphan file, never a dangling row)."""
        def write() -> Adapter:
            with self.db.write() as s:
                row = s.get(AdapterRow, adapter_id)
                if row is None:
                    raise AdapterNotFound(f"no adapter {adapter_id!r}")
                adapter = self._adapter(row)
                s.execute(delete(AdapterRow).where(AdapterRow.id == adapter_id))
                return adapter

        adapter = retry_locked(write)
        if adapter.path is not None:
            adapter.path.unlink(missing_ok=True)
        return adapter

    def export(self, adapter_id: str, destination: str | Path) -> Path:
        """Copy the adapter's GGUF (it carries ``seasoned.base_digest``) to ``destination`` (a file or folder)."""
        adapter = self.get(adapter_id)
        if adapter.path is None or not adapter.path.is_file():
            raise AdapterError(f"adapter {adapter.id} has no file to export ({adapter.reason or 'missing'})")
        target = Path(destination).expanduser()
        if target.is_dir():
            target = target / f"adapter-{adapter.namespace}-{adapter.scope}-v{adapter.version}-{adapter.id[:8]}.gguf"
        shutil.copyfile(adapter.path, target)
        return target

    def sweep_orphans(self) -> list[Path]:
        """Remove files under the adapters folder that no row names (left by a crash before the commit)."""
        if not self.root.is_dir():
            return []
        with self.db.read() as s:
            named = {p for p in s.scalars(select(AdapterRow.path)) if p}
        removed = []
        for path in self.root.glob("*/*.gguf*"):
            if str(path.relative_to(self.root)) not in named:
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    # --- reading ------------------------------------------------------------------------------------
    def active(self, namespace: str, model: str, scope: str, *, digest: str | None = None) -> Adapter | None:
        """The adapter to serve for (namespace, model, scope), or None: only an ``active`` one trained on
        this very base model file (``digest``: its sha256, default computed from ``model``) whose file is
        there with the sha256 recorded when it was written. Non-local models have none."""
        if not str(model).startswith(LOCAL_PREFIX):
            return None
        if digest is None:
            try:
                digest = base_digest(model)
            except Exception as err:  # noqa: BLE001 - no base file, no adapter (the run reports the model error)
                log.debug("no adapter for %s: %s", model, err)
                return None
        with self.db.read() as s:
            row = s.scalar(select(AdapterRow).where(
                AdapterRow.namespace == namespace, AdapterRow.model == model, AdapterRow.scope == scope,
                AdapterRow.base_digest == digest, AdapterRow.status == "active",
            ).order_by(AdapterRow.version.desc()).limit(1))
            adapter = self._adapter(row) if row is not None else None
        if adapter is None or not self.usable(adapter):
            return None
        return adapter

    def usable(self, adapter: Adapter) -> bool:
        """Whether the adapter's file is there, whole (the sha256 recorded when it was written)."""
        if adapter.path is None or not adapter.path.is_file():
            log.warning("adapter %s: its file %s is missing; not used", adapter.id, adapter.path)
            return False
        try:
            if file_sha256(adapter.path) != adapter.file_sha256:
                log.warning("adapter %s: its file %s changed since it was written; not used", adapter.id,
                            adapter.path)
                return False
        except OSError:
            return False
        return True

    def get(self, adapter_id: str) -> Adapter:
        with self.db.read() as s:
            row = s.get(AdapterRow, adapter_id)
            if row is None:
                raise AdapterNotFound(f"no adapter {adapter_id!r} (see `seasoned-admin adapters list`)")
            return self._adapter(row)

    def resolve(self, text: str) -> str:
        """The full id an id or a unique prefix of it names."""
        text = (text or "").strip()
        if not text or len(text) > 64 or not re.fullmatch(r"[0-9a-fA-F]+", text):
            raise AdapterNotFound(f"no adapter {text!r} (see `seasoned-admin adapters list`)")
        with self.db.read() as s:
            found = list(s.scalars(select(AdapterRow.id).where(AdapterRow.id.like(f"{text.lower()}%"))
                                   .order_by(AdapterRow.id).limit(6)))
        if not found:
            raise AdapterNotFound(f"no adapter {text!r} (see `seasoned-admin adapters list`)")
        if len(found) > 1 and text.lower() not in found:
            raise AdapterError(f"adapter id prefix {text!r} matches several adapters; give more characters")
        return text.lower() if text.lower() in found else found[0]

    def list(self, *, namespace: str | None = None, model: str | None = None, scope: str | None = None,
             status: str | None = None, limit: int = 1000) -> list[Adapter]:
        query = select(AdapterRow)
        for column, value in ((AdapterRow.namespace, namespace), (AdapterRow.model, model),
                              (AdapterRow.scope, scope), (AdapterRow.status, status)):
            if value is not None:
                query = query.where(column == value)
        with self.db.read() as s:
            rows = s.scalars(query.order_by(AdapterRow.namespace, AdapterRow.model, AdapterRow.scope,
                                            AdapterRow.version.desc()).limit(limit))
            return [self._adapter(r) for r in rows]

    def latest(self, namespace: str, model: str, scope: str, digest: str) -> Adapter | None:
        """The newest adapter of a key in any status (the training trigger counts new items from it)."""
        found = self.list(namespace=namespace, model=model, scope=scope, limit=1000)
        found = [a for a in found if a.base_digest == digest]
        return found[0] if found else None

    def _adapter(self, row: AdapterRow) -> Adapter:
        return Adapter(id=row.id, namespace=row.namespace, model=row.model, base_digest=row.base_digest,
                       scope=row.scope, status=row.status, version=row.version,
                       path=(self.root / row.path) if row.path else None, file_sha256=row.file_sha256,
                       file_bytes=row.file_bytes or 0, train_items=row.train_items or 0,
                       item_ids=dict(row.item_ids or {}), demos_seen=row.demos_seen or 0,
                       train_seconds=row.train_seconds or 0.0, peak_rss_mb=row.peak_rss_mb or 0.0,
                       check=row.check, params=row.params, reason=row.reason or "",
                       created_at=as_utc(row.created_at), updated_at=as_utc(row.updated_at))


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise AdapterError(f"adapter status must be one of {', '.join(STATUSES)}, not {status!r}")
