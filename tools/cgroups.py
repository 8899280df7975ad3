"""A cgroup per sandboxed command: a hard process limit (``pids``), a memory limit across all of the
command's processes (``memory``), and a way to kill every process a command left behind.

Why cgroups: ``RLIMIT_NPROC`` is never enforced for host uid 0 (the kernel exempts root even inside a
user namespace mapped to it), so a sandbox started by root needs ``pids.max`` to stop a fork bomb; and
``RLIMIT_AS`` bounds one process, not eight processes of 400 MB each (nor the sandbox's tmpfs pages, which
are charged to the cgroup of the process that writes them).

Works with cgroup v1 (the ``pids`` and ``memory`` hierarchies) and v2 (the controllers enabled below this
process's cgroup); it needs write access to the cgroup filesystem (root, or a delegated subtree). A
memory cgroup is only ever made below this process's own one, so whatever limit and accounting the host
put on this process stays in force. ``available(controller)`` says whether one can be used here; when it
cannot, the sandbox reports the weaker limit in force.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import signal
import time
from pathlib import Path

CONTROLLERS = ("pids", "memory")
_PARENT = "seasoned-sandbox"
_counter = itertools.count()
_PROBE = {"pids": ("pids.max", "8"), "memory": ("memory.max", "64M")}
_PROBE_V1 = {"pids": ("pids.max", "8"), "memory": ("memory.limit_in_bytes", str(64 << 20))}


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
    """This process's cgroup path per hierarchy: ``{"pids": ..., "memory": ..., "": ...}`` (``""`` = v2)."""
    paths = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name] = path
    except (OSError, ValueError):
        pass
    return paths


def _candidates(controller: str) -> list[tuple[Path, bool]]:
    """``(directory, is_v2)`` under which a per-command cgroup could be created: below this process's own
    cgroup, then (``pids`` only) at the root of the hierarchy (on v2 a cgroup that holds processes cannot
    enable controllers for its children, e.g. a systemd session scope); v1 first, then v2."""
    own = _own_paths()
    found = []
    for mount, fstype, options in _mounts():
        if fstype == "cgroup" and controller in options.split(",") and controller in own:
            bases = [Path(mount) / own[controller].lstrip("/")]
        elif fstype == "cgroup2" and "" in own:
            bases = [Path(mount) / own[""].lstrip("/")]
        else:
            continue
        if controller == "pids":
            bases.append(Path(mount))
        for base in dict.fromkeys(bases):
            try:
                if fstype == "cgroup" or controller in (base / "cgroup.controllers").read_text().split():
                    found.append((base / _PARENT, fstype == "cgroup2"))
            except OSError:
                continue
    return found


def _prepare(parent: Path, controller: str, v2: bool) -> bool:
    """Create ``parent`` (and on v2 enable ``controller`` for its children); True if a child gets a limit."""
    try:
        parent.mkdir(exist_ok=True)
        control = parent / "cgroup.subtree_control"
        if v2 and controller not in control.read_text().split():
            control.write_text(f"+{controller}")
        probe = parent / f"probe-{os.getpid()}-{controller}"
        probe.mkdir(exist_ok=True)
        try:
            name, value = (_PROBE if v2 else _PROBE_V1)[controller]
            (probe / name).write_text(value)
            return True
        finally:
            probe.rmdir()
    except OSError:
        return False


@functools.lru_cache(maxsize=len(CONTROLLERS))
def parent_dir(controller: str = "pids") -> tuple[Path, bool] | None:
    """``(directory, is_v2)`` where per-command cgroups of ``controller`` go, or ``None`` when no writable
    cgroup of it exists here."""
    for parent, v2 in _candidates(controller):
        if _prepare(parent, controller, v2):
            _remove_stale(parent)
            return parent, v2
    return None


def _remove_stale(parent: Path) -> None:
    """Remove the empty cgroups of processes that died before they could (``run-<pid>-<n>``)."""
    for child in parent.glob("run-*-*"):
        try:
            os.kill(int(child.name.split("-")[1]), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                child.rmdir()
        except (ValueError, PermissionError):
            continue


def available(controller: str = "pids") -> bool:
    return parent_dir(controller) is not None


class CommandCgroup:
    """One command's cgroup(s): ``pids.max`` and the memory limit set, the child joins before exec,
    ``close`` kills what is left and removes them. On v1 the controllers are separate hierarchies (one
    directory each); on v2 one directory holds both."""

    def __init__(self, max_pids: int | None = None, memory_bytes: int | None = None):
        name = f"run-{os.getpid()}-{next(_counter)}"
        self.dirs: dict[Path, bool] = {}  # cgroup directory -> is v2
        self.limited: list[str] = []
        try:
            for controller, limit in (("pids", max_pids), ("memory", memory_bytes)):
                found = parent_dir(controller) if limit else None
                if found is None:
                    continue
                path = found[0] / name
                if path not in self.dirs:
                    path.mkdir()
                    self.dirs[path] = found[1]
                self._limit(path, found[1], controller, max(int(limit), 1))
                self.limited.append(controller)
        except OSError:
            self.close()
            raise
        if not self.dirs:
            raise OSError("no writable pids or memory cgroup on this machine")
        self.procs = [str(path / "cgroup.procs") for path in self.dirs]

    @staticmethod
    def _limit(path: Path, v2: bool, controller: str, limit: int) -> None:
        if controller == "pids":
            (path / "pids.max").write_text(str(limit))
        elif v2:
            (path / "memory.max").write_text(str(limit))
            with contextlib.suppress(OSError):
                (path / "memory.swap.max").write_text("0")
        else:
            (path / "memory.limit_in_bytes").write_text(str(limit))
            with contextlib.suppress(OSError):  # swap accounting may be off
                (path / "memory.memsw.limit_in_bytes").write_text(str(limit))

    def join(self) -> None:
        """Move the calling process in (run in the child between fork and exec)."""
        pid = str(os.getpid()).encode()
        for procs in self.procs:
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)

    def pids(self) -> list[int]:
        found: set[int] = set()
        for procs in self.procs:
            try:
                found.update(int(p) for p in Path(procs).read_text().split())
            except (OSError, ValueError):
                continue
        return sorted(found)

    def memory_exceeded(self) -> bool:
        """Did the memory limit stop (OOM-kill) a process of the command? (``oom_kill`` of v2's
        ``memory.events``, v1's ``memory.oom_control``.)"""
        for path, v2 in self.dirs.items():
            try:
                text = (path / ("memory.events" if v2 else "memory.oom_control")).read_text()
            except OSError:
                continue
            counts = dict(line.split(None, 1) for line in text.splitlines() if " " in line)
            if counts.get("oom_kill", "0").strip() not in ("", "0"):
                return True
        return False

    def kill_all(self, wait_s: float = 5.0) -> bool:
        """SIGKILL every process in the cgroup until it is empty (or ``wait_s`` passed); True when empty."""
        deadline = time.monotonic() + wait_s
        while True:
            pids = self.pids()
            if not pids:
                return True
            for path in self.dirs:
                if (path / "cgroup.kill").exists():
                    with contextlib.suppress(OSError):
                        (path / "cgroup.kill").write_text("1")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)

    def close(self) -> None:
        """Kill what is left and remove the cgroups."""
        if getattr(self, "procs", None):
            self.kill_all()
        for path in self.dirs:
            for _ in range(1000):  # rmdir fails while an exiting process is still counted
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.001)
