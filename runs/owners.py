"""Which process runs a run, and whether that process is still alive.

Every run records its owner (``host/boot/pid/start``: the process that started or resumed it). A process
may also keep a heartbeat row (``seasoned serve`` does, every few seconds). A run still ``running`` whose
owner is gone was cut off by a kill or a crash: ``RunStore.recover_abandoned`` marks it ``interrupted`` so
that it can be resumed. An owner is gone when it ran on this machine (same boot) and its process no longer
exists (the start time tells a reused pid apart), or when its heartbeat is older than the lease. An owner
on another machine without a heartbeat cannot be judged and is left alone.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from .tables import RunBase

OWNER_MAX = 200


class RunOwnerRow(RunBase):
    """The process that last started (or resumed) a run."""

    __tablename__ = "run_owners"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(OWNER_MAX))


class WorkerRow(RunBase):
    """A long-lived process (a server replica) and when it last said it was alive."""

    __tablename__ = "run_workers"

    owner: Mapped[str] = mapped_column(String(OWNER_MAX), primary_key=True)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()[:8]
    except OSError:
        return "-"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), '-' elsewhere, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return None
    except OSError:
        return "-"
    fields = stat.rsplit(")", 1)[-1].split()
    if fields and fields[0] in ("Z", "X"):  # a zombie (killed, not yet reaped) is gone
        return None
    return fields[19] if len(fields) > 19 else "-"


@cache
def _identity(pid: int) -> str:
    host = socket.gethostname()[:120]
    return f"{host}/{_boot_id()}/{pid}/{_start_time(pid) or '-'}"


def process_owner() -> str:
    """This process's identity (computed once per pid: a fork gets its own)."""
    return _identity(os.getpid())


def is_local(owner: str) -> bool:
    host, boot, *_ = owner.split("/") + ["", ""]
    return host == socket.gethostname()[:120] and boot == _boot_id()


def local_owner_alive(owner: str) -> bool:
    """Whether a process of this machine (same boot) named by ``owner`` is still running."""
    parts = owner.split("/")
    if len(parts) != 4 or not parts[2].isdigit():
        return True  # not ours to judge
    pid, started = int(parts[2]), parts[3]
    now = _start_time(pid)
    if now is None:
        return False
    if now == "-" or started == "-":
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return now == started


def owner_gone(owner: str | None, heartbeat: datetime | None, now: datetime, lease: timedelta) -> bool:
    """Whether the process ``owner`` has stopped (see the module docstring)."""
    if not owner:
        return False
    if owner == process_owner():
        return False
    if is_local(owner):
        return not local_owner_alive(owner)
    return heartbeat is not None and now - heartbeat > lease


__all__ = ["RunOwnerRow", "WorkerRow", "is_local", "local_owner_alive", "owner_gone", "process_owner"]
