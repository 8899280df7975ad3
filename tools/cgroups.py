"""A ``pids`` cgroup per sandboxed command: a hard process limit and a way to kill every process a
command left behind.

Why a cgroup: ``RLIMIT_NPROC`` is never enforced for host uid 0 (the kernel exempts root even inside a
user namespace mapped to it), so a sandbox started by root needs ``pids.max`` to stop a fork bomb.
Works with cgroup v1 (the ``pids`` hierarchy) and v2 (``pids`` enabled below this process's cgroup);
it needs write access to the cgroup filesystem (root, or a delegated subtree). ``available()`` says
whether it can be used here; when it cannot, the sandbox reports which weaker limit is in force.
"""

from __future__ import annotations

import functools
import itertools
import os
import signal
import time
from pathlib import Path

_PARENT = "seasoned-sandbox"
_counter = itertools.count()


def _mounts() -> list[tuple[str, str, str]]:
    """``(mount point, fs type, options)`` of the cgroup filesystems."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
            found.append((parts[1].replace("\\040", " "), parts[2], parts[3]))
    return found


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per hierarchy: ``{"pids": ..., "": ...}`` (``""`` = v2)."""
    paths = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name] = path
    except (OSError, ValueError):
        pass
    return paths


def _candidates() -> list[Path]:
    """Directories under which a per-command pids cgroup could be created: below this process's own
    cgroup, then at the root of the hierarchy (on v2 a cgroup that holds processes cannot enable
    controllers for its children, e.g. a systemd session scope); v1 first, then v2."""
    own = _own_paths()
    found = []
    for mount, fstype, options in _mounts():
        if fstype == "cgroup" and "pids" in options.split(",") and "pids" in own:
            bases = [Path(mount) / own["pids"].lstrip("/"), Path(mount)]
        elif fstype == "cgroup2" and "" in own:
            bases = [Path(mount) / own[""].lstrip("/"), Path(mount)]
        else:
            continue
        for base in dict.fromkeys(bases):
            try:
                if fstype == "cgroup" or "pids" in (base / "cgroup.controllers").read_text().split():
                    found.append(base / _PARENT)
            except OSError:
                continue
    return found


def _prepare(parent: Path) -> bool:
    """Create ``parent`` (and on v2 enable ``pids`` for its children); True if a child gets ``pids.max``."""
    try:
        parent.mkdir(exist_ok=True)
        control = parent / "cgroup.subtree_control"  # v2 only
        if control.exists() and "pids" not in control.read_text().split():
            control.write_text("+pids")
        probe = parent / f"probe-{os.getpid()}"
        probe.mkdir(exist_ok=True)
        try:
            (probe / "pids.max").write_text("8")
            return True
        finally:
            probe.rmdir()
    except OSError:
        return False


@functools.lru_cache(maxsize=1)
def parent_dir() -> Path | None:
    """Where per-command cgroups go, or ``None`` when no writable pids cgroup exists here."""
    for parent in _candidates():
        if _prepare(parent):
            _remove_stale(parent)
            return parent
    return None


def _remove_stale(parent: Path) -> None:
    """Remove the empty cgroups of processes that died before they could (``run-<pid>-<n>``)."""
    for child in parent.glob("run-*-*"):
        try:
            os.kill(int(child.name.split("-")[1]), 0)
        except ProcessLookupError:
            try:
                child.rmdir()
            except OSError:
                pass
        except (ValueError, PermissionError):
            continue


def available() -> bool:
    return parent_dir() is not None


class PidsCgroup:
    """One command's cgroup: ``pids.max`` set, the child joins it before exec, ``close`` kills and removes."""

    def __init__(self, max_pids: int):
        parent = parent_dir()
        if parent is None:
            raise OSError("no writable pids cgroup on this machine")
        self.path = parent / f"run-{os.getpid()}-{next(_counter)}"
        self.path.mkdir()
        try:
            (self.path / "pids.max").write_text(str(max(int(max_pids), 1)))
        except OSError:
            self.path.rmdir()
            raise
        self.procs = str(self.path / "cgroup.procs")

    def join(self) -> None:
        """Move the calling process in (run in the child between fork and exec)."""
        fd = os.open(self.procs, os.O_WRONLY)
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in Path(self.procs).read_text().split()]
        except (OSError, ValueError):
            return []

    def kill_all(self, wait_s: float = 5.0) -> bool:
        """SIGKILL every process in the cgroup until it is empty (or ``wait_s`` passed); True when empty."""
        deadline = time.monotonic() + wait_s
        kill_file = self.path / "cgroup.kill"
        while True:
            pids = self.pids()
            if not pids:
                return True
            if kill_file.exists():
                try:
                    kill_file.write_text("1")
                except OSError:
                    pass
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)

    def close(self) -> None:
        """Kill what is left and remove the cgroup."""
        self.kill_all()
        for _ in range(1000):  # rmdir fails while an exiting process is still counted
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.001)
