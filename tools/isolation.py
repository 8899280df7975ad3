"""Which isolation the sandbox can use on this machine, probed once per process, and the scripts of the
fallbacks (see ``sandbox.py`` for what each mode gives): ``bwrap`` when bubblewrap works here, else
``namespaces`` (``unshare`` + ``isolate.sh``), else ``guard`` (a ``sitecustomize`` audit hook).

``isolation_report()`` and ``describe_isolation()`` say which is in force (``seasoned doctor``, ``seasoned
envs list``).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import bwrap, cgroups, diskcap, unprivileged

# Mounts everything read-only but the workspace, then drops capabilities (run inside `unshare`).
ISOLATE_SH = Path(__file__).with_name("isolate.sh").read_text()

GUARD_PY = r'''
import os, sys
_ROOTS = tuple(os.path.realpath(p) for p in os.environ.get("SEASONED_SANDBOX_ROOTS", "").split(os.pathsep) if p)
_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

def _inside(path):
    real = os.path.realpath(path)
    return any(real == r or real.startswith(r + os.sep) for r in _ROOTS) or real == os.devnull

def _hook(event, args):
    if event == "socket.connect" or event == "socket.sendto":
        raise PermissionError("sandbox: network access is disabled")
    if event == "open" and _ROOTS:
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (flags or 0) & _WRITE
        if writing and isinstance(path, (str, bytes, os.PathLike)) and not _inside(os.fsdecode(path)):
            raise PermissionError(f"sandbox: writing outside the workspace is not allowed: {path}")
    if event in ("os.rename", "os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree") and _ROOTS:
        for p in args:
            if isinstance(p, (str, bytes, os.PathLike)) and not _inside(os.fsdecode(p)):
                raise PermissionError(f"sandbox: changing files outside the workspace is not allowed: {p}")

sys.addaudithook(_hook)
'''


@functools.lru_cache(maxsize=1)
def namespaces_available() -> bool:
    """Can this process run a command in fresh network + mount + pid namespaces (the fallback)?"""
    if not sys.platform.startswith("linux") or not (shutil.which("unshare") and shutil.which("setpriv")):
        return False
    probe = tempfile.mkdtemp(prefix="seasoned-probe-")
    try:
        cmd = namespace_prefix() + [probe, probe, "--", "sh", "-c", "touch ok && ! touch /probe-outside 2>/dev/null"]
        if os.geteuid() != 0:
            cmd[1:1] = ["--map-root-user"]
        done = subprocess.run(cmd, check=False, capture_output=True, timeout=20)
        return done.returncode == 0 and os.path.exists(os.path.join(probe, "ok"))
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def namespace_prefix() -> list[str]:
    return ["unshare", "--net", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child",
            "--mount-proc", "--", "sh", "-c", ISOLATE_SH, "isolate"]


def bwrap_available() -> bool:
    return bwrap.status().usable


ISOLATIONS = ("auto", "bwrap", "namespaces", "guard")
_log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def best_isolation() -> str:
    """The isolation ``"auto"`` picks here; a fallback is logged once, with the reason bwrap is not used."""
    if bwrap_available():
        return "bwrap"
    mode = "namespaces" if namespaces_available() else "guard"
    _log.warning("sandbox: falling back to %r isolation (%s)", mode, bwrap.status().reason)
    return mode


def process_limit_mechanism(isolation: str, as_user: bool = False) -> str:
    """How ``Limits.max_processes`` is enforced under ``isolation`` (``as_user``: bwrap started as an
    unprivileged user by root): ``cgroup``, ``rlimit`` or ``none``."""
    if cgroups.available("pids"):
        return "cgroup"
    if isolation == "bwrap" and (os.geteuid() != 0 or as_user):
        return "rlimit"
    return "none"


def sandbox_user(isolation: str) -> str:
    """Who a sandboxed command is on the host: this process's user, ``uid N`` (unprivileged, when this
    process is root), or ``root`` (bwrap run by root where unprivileged user namespaces do not work)."""
    if os.geteuid() != 0:
        return f"uid {os.geteuid()} (this process's)"
    if isolation == "bwrap" and bwrap.status().unprivileged:
        return f"uid {unprivileged.SANDBOX_UID}"
    return "root"


def memory_limit_mechanism() -> str:
    """How ``Limits.total_memory_mb`` (all processes of a command) is enforced: ``cgroup`` or ``none``."""
    found = cgroups.parent_dir("memory")
    return "none" if found is None else f"cgroup {'v2' if found[1] else 'v1'}"


def disk_limit_mechanism() -> str:
    """How workspaces the product makes (SWE attempts, scratch workspaces) are size-capped."""
    return "loop-mounted filesystem" if diskcap.available() else "none"


def isolation_report() -> dict:
    """What ``auto`` isolation gives on this machine (printed by ``seasoned doctor``)."""
    status = bwrap.status()
    mode = best_isolation()
    as_user = mode == "bwrap" and status.unprivileged
    return {"isolation": mode, "bwrap": status.path, "bwrap_version": status.version, "host_user": sandbox_user(mode),
            "bwrap_problem": status.reason or None, "seccomp": mode == "bwrap" and status.seccomp,
            "userns_disabled_inside": mode == "bwrap" and status.disable_userns,
            "process_limit": process_limit_mechanism(mode, as_user), "memory_limit": memory_limit_mechanism(),
            "disk_limit": disk_limit_mechanism()}


def describe_isolation() -> str:
    """One line for ``seasoned envs list``: which sandbox commands run in here, and what it lacks."""
    report = isolation_report()
    limit = (f"runs as host {report['host_user']}; process limit: {report['process_limit']}; "
             f"memory across processes: {report['memory_limit']}; workspace disk: {report['disk_limit']}")
    if report["isolation"] == "bwrap":
        seccomp = "seccomp deny list" if report["seccomp"] else "no seccomp"
        return f"sandbox: bwrap ({report['bwrap_version']}; {seccomp}; {limit})"
    return (f"sandbox: {report['isolation']} (FALLBACK, weaker than bwrap: {report['bwrap_problem']}; {limit})")
