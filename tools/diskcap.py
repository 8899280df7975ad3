"""Size-capped directories for workspaces: an ext4 filesystem in a sparse image file, loop-mounted (nosuid,
nodev). A write past its size fails with ENOSPC, whatever wrote it and however many files it spread over
(``RLIMIT_FSIZE`` caps one file only). The image takes on the host disk only what is written in it.

Why a loop-mounted filesystem and not the alternatives: a quota needs the host filesystem mounted with
quotas (``usrquota``/``prjquota``), which a program cannot assume; a tmpfs would hold a repository, its venv
and its build artefacts in RAM; watching the size and killing the command lets a burst through. It needs
root, ``mkfs.ext4``, ``mount`` and a loop device: ``available()`` probes once per process. Where it is
missing the workspace is an ordinary directory, and ``seasoned envs list`` says the disk is not limited.

* ``CappedDir.create(size_mb)``: a capped directory of one's own (an SWE attempt); ``remove()`` unmounts and
  deletes it, and a small watcher process does the same if this process dies first.
* ``scratch_root()``: this process's shared scratch area (``SCRATCH_MB`` for all of them together), where
  short-lived workspaces go (HumanEval, ``python_tool``: ``tempfile.mkdtemp(dir=scratch_root())``).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

SCRATCH_MB = 1024
_MKFS = ["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", "-E", "lazy_itable_init=1,nodiscard"]
_MOUNT_OPTIONS = "loop,nosuid,nodev,noatime"
_lock = threading.Lock()


@dataclass
class CappedDir:
    """``path``: the mounted filesystem of ``size_mb``; ``root``: the temp directory holding it and its image."""

    root: Path
    size_mb: int
    watcher: subprocess.Popen | None

    @property
    def path(self) -> Path:
        return self.root / "fs"

    @classmethod
    def create(cls, size_mb: int, prefix: str = "seasoned-disk-") -> CappedDir:
        """A new capped directory (``OSError`` when it cannot be made here)."""
        root = Path(tempfile.mkdtemp(prefix=prefix)).resolve()
        image, mount_point = root / ".disk.img", root / "fs"
        try:
            mount_point.mkdir()
            with open(image, "wb") as fh:
                fh.truncate(int(size_mb) << 20)  # sparse
            _run([*_MKFS, str(image)])
            _run(["mount", "-o", _MOUNT_OPTIONS, str(image), str(mount_point)])
        except (OSError, subprocess.SubprocessError):
            shutil.rmtree(root, ignore_errors=True)
            raise
        with contextlib.suppress(OSError):
            (mount_point / "lost+found").rmdir()
        os.chmod(mount_point, 0o755)
        return cls(root, int(size_mb), _watch(root, mount_point))

    def remove(self) -> None:
        """Unmount, delete the image and the directory; stop the watcher."""
        _unmount(self.path)
        shutil.rmtree(self.root, ignore_errors=True)
        if self.watcher is not None:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                self.watcher.stdin.close()
                self.watcher.wait(timeout=10)
            self.watcher = None


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise OSError(f"{argv[0]} failed: {(done.stderr or done.stdout).strip()[:300]}")


def _unmount(mount_point: Path) -> None:
    if os.path.ismount(mount_point):
        subprocess.run(["umount", "-l", str(mount_point)], check=False, capture_output=True, timeout=60)


def _watch(root: Path, mount_point: Path) -> subprocess.Popen | None:
    """A tiny process that waits for this one to die (its stdin pipe closes), then unmounts and removes."""
    try:
        return subprocess.Popen(["/bin/sh", "-c", 'cat >/dev/null; umount -l "$2" 2>/dev/null; rm -rf -- "$1"',
                                 "seasoned-disk-reaper", str(root), str(mount_point)], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError:
        return None


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Can this process make a capped directory here (root, mkfs.ext4, a loop device)? Probed once."""
    if os.geteuid() != 0 or not (shutil.which("mkfs.ext4") and shutil.which("mount")):
        return False
    if not os.path.exists("/dev/loop-control"):
        return False
    try:
        probe = CappedDir.create(16, prefix="seasoned-disk-probe-")
    except (OSError, subprocess.SubprocessError):
        return False
    probe.remove()
    return True


@functools.lru_cache(maxsize=1)
def _scratch() -> CappedDir | None:
    try:
        area = CappedDir.create(SCRATCH_MB, prefix="seasoned-scratch-")
    except (OSError, subprocess.SubprocessError):
        return None
    owner = os.getpid()
    atexit.register(lambda: os.getpid() == owner and area.remove())
    return area


def scratch_root() -> str | None:
    """The capped scratch area's directory (``dir=`` of ``tempfile`` helpers), or None where capped
    directories do not work here (``tempfile`` then uses the usual temp directory)."""
    with _lock:
        area = _scratch() if available() else None
    return str(area.path) if area else None
