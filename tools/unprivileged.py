"""Running bwrap as an unprivileged host user when this process is root.

Run by root, bwrap maps the sandbox's uid to host uid 0 (``--uid N`` only renames it inside: the kernel
still sees root), so every root-owned file the sandbox can see is its own to write, and a kernel bug is a
host-root bug. When this process is root and the kernel lets an unprivileged user create user namespaces,
the sandbox instead runs as ``SANDBOX_UID`` on the host (uid 0 inside, so pip and git behave as usual):

* the child of ``subprocess`` (still root) joins the command's cgroups, enters a private mount namespace
  and bind-mounts every path the sandbox needs under a staging directory anyone may traverse (the
  workspace of a root-only ``mkdtemp``, an interpreter under ``/root``), then drops to ``SANDBOX_UID`` and
  executes bwrap, which binds the staged paths to their real names;
* the workspace and the writable binds are handed to ``SANDBOX_UID`` (``hand_over``), and files the host
  writes there later take the owner of their directory (``files.py``). Seen from the host, what the
  sandbox wrote belongs to ``SANDBOX_UID``; root still reads and removes it.

``SANDBOX_UID`` is outside the ids distributions and systemd hand out (system and regular users, dynamic
users below 65536, subordinate ranges from 100000, container ranges up to 1879048191).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import os
import stat
import tempfile
from pathlib import Path

SANDBOX_UID = SANDBOX_GID = 2_000_000_000
PUBLIC = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/proc")  # traversable by anyone
_CLONE_NEWNS = 0x00020000
_MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x1000, 0x4000, 0x40000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)  # resolved here, not in a child
_mount = _libc.mount
_mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_unshare = _libc.unshare
_unshare.argtypes = [ctypes.c_int]
_stage_dir: str | None = None


def wanted() -> bool:
    """Is this process root (so that bwrap would map the sandbox to host root)?"""
    return os.geteuid() == 0


def stage_dir() -> str:
    """An empty directory of this process; in each command's private mount namespace a tmpfs covers it and
    holds the staged binds (the host never sees them)."""
    global _stage_dir
    if _stage_dir is None or not os.path.isdir(_stage_dir):
        _stage_dir, owner = tempfile.mkdtemp(prefix="seasoned-stage-"), os.getpid()
        atexit.register(lambda path=_stage_dir: os.getpid() == owner and _remove_empty(path))
    return _stage_dir


def _remove_empty(path: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(path)


def stage(args: list[str]) -> tuple[list[str], list[str]]:
    """``args`` (a bwrap command line) with the source of every bind that is not public replaced by a
    staged path, and the sources in staging order."""
    out, sources, i = [], [], 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out += args[i:]
            break
        if arg in ("--bind", "--ro-bind", "--dev-bind") and i + 2 < len(args):
            source = args[i + 1]
            if not any(source == p or source.startswith(p + "/") for p in PUBLIC):
                out += [arg, os.path.join(stage_dir(), str(len(sources))), args[i + 2]]
                sources.append(source)
                i += 3
                continue
        out.append(arg)
        i += 1
    return out, sources


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"sandbox: {what}: {os.strerror(errno)}")


def enter(sources: list[str]) -> None:
    """In the child, before exec: stage ``sources`` in a private mount namespace, then drop to
    ``SANDBOX_UID`` (no supplementary groups). Raises ``OSError`` (``subprocess`` reports it)."""
    stage = stage_dir().encode()
    _check(_unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "make / private")
    _check(_mount(b"tmpfs", stage, b"tmpfs", _MS_NOSUID | _MS_NODEV, b"mode=0755,size=1m"), "staging tmpfs")
    for number, source in enumerate(sources):
        target = stage + b"/" + str(number).encode()
        if os.path.isdir(source):
            os.mkdir(target)
        else:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o600))
        _check(_mount(os.fsencode(source), target, None, _MS_BIND | _MS_REC, None), f"stage {source}")
    os.setgroups([])
    os.setresgid(SANDBOX_GID, SANDBOX_GID, SANDBOX_GID)
    os.setresuid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)


SYSTEM = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/proc", "/sys",
          "/dev", "/run", "/var/lib/dpkg", "/var/log", "/var/spool")  # /var/lib/<app> may hold SEASONED_HOME


def check_own(path: Path, st: os.stat_result) -> None:
    """Refuse to hand over a directory that is not a workspace of its own: ``/`` or a top-level directory,
    a home directory, a system directory, or a shared sticky one such as ``/tmp``."""
    home = Path.home().resolve()
    text = str(path)
    shared = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX and st.st_mode & stat.S_IWOTH
    if (len(path.parts) <= 2 or path in (home, Path("/home"), Path("/root")) or path.parent == Path("/home")
            or shared or any(text == p or text.startswith(p + "/") for p in SYSTEM)):
        raise ValueError(f"{text!r} is not a directory of its own (a system, home or shared directory): "
                         f"give the sandbox a workspace directory made for it")


def hand_over(path: str | os.PathLike) -> None:
    """Make ``path`` and everything below it belong to ``SANDBOX_UID`` (links themselves, never their
    targets; directory fds all the way, so a link swapped in cannot redirect the walk). ``ValueError``
    for a directory that is not a workspace of its own (``check_own``)."""
    path = Path(os.path.abspath(path))
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return
    check_own(path, st)
    if (st.st_uid, st.st_gid) != (SANDBOX_UID, SANDBOX_GID):
        os.chown(path, SANDBOX_UID, SANDBOX_GID, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        return
    for _, dirs, files, dir_fd in os.fwalk(path, follow_symlinks=False):
        for name in dirs + files:
            try:
                entry = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if (entry.st_uid, entry.st_gid) != (SANDBOX_UID, SANDBOX_GID):
                    os.chown(name, SANDBOX_UID, SANDBOX_GID, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
