"""Run commands in a per-attempt workspace: time, memory and process limits, truncated output, no
network, nothing of the host visible but what the command needs, nothing left running afterwards.

Isolation, strongest available first (probed once per process; ``Sandbox.isolation`` says which is in
force, ``isolation_report()`` and ``seasoned doctor`` print it):

* ``bwrap`` (bubblewrap, Debian package ``bubblewrap``): the command runs in fresh user, pid, network,
  ipc, uts and cgroup namespaces on an empty root (see ``bwrap.py``): the workspace read-write; ``/usr``,
  a few ``/etc`` files and this interpreter read-only; a private ``/dev``, ``/proc`` and ``/tmp``; no home
  directories, no ``SEASONED_HOME``, no ``/run`` (no host unix sockets), no network (``network=True``
  shares the host network, for an install step). All capabilities dropped, no new user namespaces,
  a seccomp deny list (``seccomp.py``), ``--die-with-parent``, ``--new-session``, ``/proc/sys`` read-only.
  Run by root, bwrap starts as an unprivileged host user (``unprivileged.py``; the workspace and
  ``rw_binds`` are handed to it) where the kernel allows it. When the command exits
  (or is killed at the time limit) the pid namespace ends: every process it started dies with it, also
  ones started with ``setsid`` or a double fork.
* ``namespaces`` (fallback when bwrap cannot run; ``unshare`` + ``setpriv``, script ``isolate.sh``): a
  private network, mount and pid namespace in which every host mount is read-only except the workspace
  and ``rw_binds`` (a private ``/dev/shm``); capabilities dropped. The host filesystem stays READABLE
  (home directories, ``SEASONED_HOME``) and host unix sockets reachable.
* ``guard`` (last fallback): a ``sitecustomize`` audit hook refuses socket connects and writes outside the
  workspace in Python processes only. Shell commands are limited, not confined.

In every mode a ``pids`` cgroup, where one is writable, caps the processes and is emptied when ``run``
returns; a ``memory`` cgroup (below this process's own), where one is writable, caps the memory of all the
command's processes together (``Limits.total_memory_mb``; a process over it is OOM-killed and the result
says ``memory limit``).

Extra paths a command needs (a shared pip wheel cache, a venv outside the workspace) are given
explicitly: ``Sandbox(ws, ro_binds=[cache], rw_binds=[out_dir])``, or appended later to
``sandbox.ro_binds`` / ``sandbox.rw_binds``; they appear at the same path inside. Each must exist.

Limits: address space, CPU seconds, written file size (``setrlimit``); a process limit
(``Limits.max_processes``: a ``pids`` cgroup when writable (``cgroups.py``), else ``RLIMIT_NPROC``
inside bwrap's user namespace, which the kernel does not enforce for root: ``Sandbox.process_limit``
says which); a wall-clock timeout kills the whole tree. Output keeps the head and tail of each stream
up to ``max_output_chars``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from seasoned.errors import ToolError

from . import bwrap, cgroups, unprivileged
from .files import private_dir, resolve_in, write_new_at
from .isolation import (
    GUARD_PY,
    ISOLATIONS,
    best_isolation,
    bwrap_available,
    memory_limit_mechanism,
    namespace_prefix,
    namespaces_available,
    process_limit_mechanism,
)
from .limits import Limits


@dataclass
class ExecResult:
    """What one sandboxed command did."""

    stdout: str
    stderr: str
    exit_code: int | None
    timed_out: bool = False
    duration_s: float = 0.0
    truncated: bool = False
    memory_exceeded: bool = False  # the memory cgroup OOM-killed one of its processes

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    @property
    def killed_reason(self) -> str | None:
        """``time limit`` / ``memory limit`` / ``signal N`` when the command did not exit by itself."""
        if self.timed_out:
            return "time limit"
        if self.memory_exceeded:
            return "memory limit"
        if self.exit_code is not None and self.exit_code < 0:
            sig = -self.exit_code
            if sig in (signal.SIGXCPU, signal.SIGKILL):
                return "time limit" if sig == signal.SIGXCPU else "killed"
            return f"signal {sig}"
        if "MemoryError" in self.stderr or "Cannot allocate memory" in self.stderr:
            return "memory limit"
        if self.exit_code and any(s in self.stderr for s in ("Cannot fork", "fork: Resource temporarily",
                                                             "can't start new thread")):
            return "process limit"
        return None

    def render(self) -> str:
        """Compact text for a model: exit status then output."""
        status = f"exit code {self.exit_code}"
        if self.killed_reason:
            status += f" (stopped: {self.killed_reason})"
        parts = [status]
        if self.stdout:
            parts.append(self.stdout.rstrip("\n"))
        if self.stderr:
            parts.append("[stderr]\n" + self.stderr.rstrip("\n"))
        return "\n".join(parts)


class _Capped:
    """Reads a stream to the end, keeping its head and tail (``limit`` characters in all)."""

    def __init__(self, stream, limit: int):
        self.stream, self.limit = stream, max(limit, 64)
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        half = self.limit // 2
        for chunk in iter(functools.partial(self.stream.read1, 65536), b""):
            room = half - len(self.head)
            if room > 0:
                self.head += chunk[:room]
                chunk = chunk[room:]
            if chunk:
                self.tail += chunk
                if len(self.tail) > half:
                    self.dropped += len(self.tail) - half
                    del self.tail[: len(self.tail) - half]

    def text(self) -> tuple[str, bool]:
        self.thread.join(timeout=5)
        head = self.head.decode(errors="replace")
        tail = self.tail.decode(errors="replace")
        if self.dropped:
            return f"{head}\n... [{self.dropped} bytes of output cut] ...\n{tail}", True
        return head + tail, False


class _Info:
    """Reads bwrap's ``--info-fd`` JSON: the host pid of the sandbox's pid 1 (to kill the whole tree)."""

    def __init__(self, fd: int):
        self.fd, self.child_pid = fd, None
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        data = b""
        try:
            while chunk := os.read(self.fd, 4096):
                data += chunk
                try:
                    self.child_pid = int(json.loads(data)["child-pid"])
                    break
                except (ValueError, KeyError, TypeError):
                    continue
        except OSError:
            pass
        finally:
            os.close(self.fd)
            self.ready.set()


class Sandbox:
    """A workspace directory plus the rules every command in it runs under.

    ``isolation``: ``"auto"`` (the strongest available), or one of ``"bwrap"``, ``"namespaces"``,
    ``"guard"`` (required: a clear error when it cannot run here). ``network=True`` on ``run`` lifts the
    network ban (an instance's own install step). ``ro_binds`` / ``rw_binds``: extra host paths visible
    inside, read-only / read-write, at the same path. ``base_python``: commands run a venv of their own made
    from the base interpreter; this process's venv (its packages) is not visible (bwrap).
    """

    def __init__(self, workspace: str | os.PathLike, limits: Limits | None = None, *,
                 isolation: str = "auto", env: dict[str, str] | None = None,
                 ro_binds: list[str | os.PathLike] = (), rw_binds: list[str | os.PathLike] = (),
                 base_python: bool = False):
        self.root = Path(workspace).resolve()
        if not self.root.is_dir():
            raise ToolError(f"sandbox workspace {str(self.root)!r} does not exist or is not a directory")
        self.limits = limits or Limits()
        if isolation not in ISOLATIONS:
            raise ToolError(f"sandbox isolation must be one of {', '.join(ISOLATIONS)}, got {isolation!r}")
        if isolation == "bwrap" and not bwrap_available():
            raise ToolError(f"sandbox isolation 'bwrap' requested but {bwrap.status().reason}")
        if isolation == "namespaces" and not namespaces_available():
            raise ToolError("sandbox isolation 'namespaces' requested but unshare/setpriv do not work here")
        self.isolation = best_isolation() if isolation == "auto" else isolation
        self.extra_env = dict(env or {})
        self.ro_binds: list[Path] = [Path(p) for p in ro_binds]
        self.rw_binds: list[Path] = [Path(p) for p in rw_binds]
        self.base_python = base_python
        self._check_binds()
        self._guard_dir: str | None = None
        # Run by root, bwrap starts as an unprivileged host user; the workspace and rw_binds become its.
        self.unprivileged = self.isolation == "bwrap" and unprivileged.wanted() and bwrap.status().unprivileged
        if self.unprivileged:
            for path in [self.root, *self.rw_binds]:
                try:
                    unprivileged.hand_over(os.path.realpath(path))
                except ValueError as exc:
                    raise ToolError(f"sandbox: {exc}") from None

    @property
    def process_limit(self) -> str:
        """How ``max_processes`` is enforced: ``cgroup``, ``rlimit`` or ``none`` (root without a pids cgroup)."""
        return process_limit_mechanism(self.isolation, self.unprivileged)

    @property
    def memory_limit(self) -> str:
        """How ``total_memory_mb`` is enforced: ``cgroup`` or ``none`` (no writable memory cgroup here)."""
        return memory_limit_mechanism()

    def _check_binds(self) -> tuple[list[Path], list[Path]]:
        checked = []
        for name, paths in (("ro_binds", self.ro_binds), ("rw_binds", self.rw_binds)):
            resolved = []
            for path in paths:
                path = Path(path)
                if not path.is_absolute() or not path.exists():
                    raise ToolError(f"sandbox {name}: {str(path)!r} must be an existing absolute path")
                if Path(os.path.realpath(path)) == Path("/"):
                    raise ToolError(f"sandbox {name}: binding the whole filesystem ({str(path)!r}) is not allowed")
                resolved.append(Path(os.path.abspath(path)))
            checked.append(resolved)
        return checked[0], checked[1]

    # --- environment -------------------------------------------------------------------------------
    def _guard_path(self) -> str:
        if self._guard_dir is None:
            self._guard_dir = tempfile.mkdtemp(prefix="seasoned-guard-")
            Path(self._guard_dir, "sitecustomize.py").write_text(GUARD_PY)
        return self._guard_dir

    def child_env(self, network: bool = False) -> dict[str, str]:
        tmp = self.root / ".tmp"
        os.close(private_dir(self.root, ".tmp"))  # a link or file a command left there is replaced
        keep = ("PATH", "LANG", "LC_ALL", "TERM", "VIRTUAL_ENV")
        env = {k: os.environ[k] for k in keep if k in os.environ}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        bindir = str(Path(getattr(sys, "_base_executable", sys.executable) if self.base_python
                          else sys.executable).parent)
        if bindir not in env["PATH"].split(os.pathsep):
            env["PATH"] = bindir + os.pathsep + env["PATH"]
        env.update(HOME=str(self.root), TMPDIR=str(tmp), PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1",
                   PYTHONHASHSEED="0", MPLBACKEND="Agg", GIT_CONFIG_NOSYSTEM="1", PIP_NO_INPUT="1")
        if self.isolation == "guard" and not network:
            env["PYTHONPATH"] = self._guard_path()
            env["SEASONED_SANDBOX_ROOTS"] = os.pathsep.join([str(self.root), "/dev", *map(str, self.rw_binds)])
        env.update(self.extra_env)
        return env

    def _command(self, argv: list[str], cwd: Path, network: bool, limits: Limits,
                 info_fd: int | None = None, seccomp_fd: int | None = None) -> list[str]:
        ro, rw = self._check_binds()
        if self.isolation == "bwrap":
            return bwrap.command(argv, workspace=self.root, cwd=cwd, ro=ro, rw=rw, network=network,
                                 info_fd=info_fd, seccomp_fd=seccomp_fd,
                                 disable_userns=bwrap.status().disable_userns,
                                 max_processes=limits.max_processes, tmpfs_mb=limits.tmpfs_mb,
                                 base_python=self.base_python, unprivileged=self.unprivileged)
        if self.isolation != "namespaces":
            return argv
        prefix = namespace_prefix()
        if network:
            prefix.remove("--net")
        if os.geteuid() != 0:
            prefix[1:1] = ["--map-root-user"]
        return prefix + [str(self.root), str(cwd), *map(str, rw), "--"] + argv

    def resolve_cwd(self, cwd: str | os.PathLike | None) -> Path:
        return resolve_in(self.root, cwd or ".")

    # --- running -----------------------------------------------------------------------------------
    def run(self, command: str | list[str], *, cwd: str | os.PathLike | None = None, stdin: str | None = None,
            timeout: float | None = None, network: bool = False, limits: Limits | None = None) -> ExecResult:
        """Run ``command`` (a shell string, or an argv list) in the workspace under the limits.

        When it returns, every process the command started is gone (bwrap: the pid namespace ended;
        with a pids cgroup: the cgroup is emptied, in every isolation mode)."""
        limits = limits or self.limits
        if timeout is not None:
            limits = dataclasses.replace(limits, time_s=timeout)
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else [str(a) for a in command]
        if not argv or not argv[0]:
            raise ToolError("sandbox: empty command")
        work = self.resolve_cwd(cwd)
        env = self.child_env(network)
        group = _cgroup(limits)
        info_r = info_w = seccomp_fd = None
        if self.isolation == "bwrap":
            info_r, info_w = os.pipe()
            seccomp_fd = bwrap.seccomp_pipe() if bwrap.status().seccomp else None
        fds = tuple(fd for fd in (info_w, seccomp_fd) if fd is not None)
        cmd, staged = self._command(argv, work, network, limits, info_w, seccomp_fd), None
        if self.unprivileged:
            cmd, staged = unprivileged.stage(cmd)
        started = time.monotonic()
        try:
            proc = subprocess.Popen(cmd, cwd=work, env=env,
                                    stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=fds,
                                    preexec_fn=_preexec(limits, group, staged))  # noqa: PLW1509 - syscalls only
        except (OSError, subprocess.SubprocessError) as exc:
            for fd in (info_r, *fds):
                if fd is not None:
                    os.close(fd)
            if group:
                group.close()
            return ExecResult("", f"sandbox: cannot start {argv[0]!r}: {exc}", 127)
        for fd in fds:
            os.close(fd)
        info = _Info(info_r) if info_r is not None else None
        out, err = _Capped(proc.stdout, limits.max_output_chars), _Capped(proc.stderr, limits.max_output_chars // 2)
        if stdin is not None:
            try:
                proc.stdin.write(stdin.encode())
                proc.stdin.close()
            except OSError:
                pass
        timed_out = not _wait(proc, limits.time_s)
        if timed_out:
            _stop(proc, info)
        if self.isolation != "bwrap":
            _kill_group(proc)  # stray children of a finished command (bwrap: the pid namespace ended)
        oom = bool(group and group.memory_exceeded())
        if group:
            group.close()  # empties the cgroup: nothing the command started survives
        stdout, cut_out = out.text()
        stderr, cut_err = err.text()
        code = proc.returncode
        if self.isolation == "bwrap" and code is not None and 128 < code <= 128 + 64:
            code = 128 - code  # bwrap reports a command killed by signal N as 128+N; ours is -N
        return ExecResult(stdout, stderr, code, timed_out, round(time.monotonic() - started, 3), cut_out or cut_err,
                          memory_exceeded=oom)

    async def arun(self, command: str | list[str], **kwargs) -> ExecResult:
        """``run`` without blocking the event loop."""
        return await asyncio.to_thread(self.run, command, **kwargs)

    def run_python(self, code: str, *, timeout: float | None = None, filename: str = "_snippet.py",
                   stdin: str | None = None) -> ExecResult:
        """Write ``code`` to a file in the workspace's ``.tmp`` and run it with this interpreter. The file
        is written through directory fds, never through a link an earlier command planted there."""
        tmp_fd = private_dir(self.root, ".tmp")
        try:
            write_new_at(tmp_fd, filename, code.encode("utf-8", "surrogateescape"))
        finally:
            os.close(tmp_fd)
        path = self.root / ".tmp" / filename
        return self.run([sys.executable, str(path)], timeout=timeout, stdin=stdin)

    async def arun_python(self, code: str, **kwargs) -> ExecResult:
        return await asyncio.to_thread(self.run_python, code, **kwargs)

    def cleanup(self) -> None:
        if self._guard_dir:
            shutil.rmtree(self._guard_dir, ignore_errors=True)
            self._guard_dir = None


def _cgroup(limits: Limits) -> cgroups.CommandCgroup | None:
    """The command's cgroup(s): its process limit and its memory limit across processes, where writable."""
    pids = limits.max_processes if cgroups.available("pids") else None
    memory = limits.total_memory_mb << 20 if limits.total_memory_mb and cgroups.available("memory") else None
    if not (pids or memory):
        return None
    try:
        return cgroups.CommandCgroup(pids, memory)
    except OSError:
        return None


def _preexec(limits: Limits, group: cgroups.CommandCgroup | None, staged: list[str] | None):
    apply = limits.preexec()

    def run() -> None:
        apply()
        if group is not None:
            group.join()  # before exec: every descendant is counted and can be killed
        if staged is not None:
            unprivileged.enter(staged)  # last: it drops root

    return run


def _wait(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait for ``proc`` up to ``timeout`` seconds; True if it exited. A pidfd wakes up at once (Popen.wait
    with a timeout polls with sleeps of up to 50 ms, most of a short command's cost)."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if not poller.poll(max(timeout, 0) * 1000):
            return False
    finally:
        os.close(fd)
    proc.wait()
    return True


def _stop(proc: subprocess.Popen, info: _Info | None) -> None:
    """Kill a command at its time limit; with bwrap, kill the sandbox's pid 1 so its namespace ends."""
    if info is not None and info.ready.wait(timeout=2) and info.child_pid:
        try:
            os.kill(info.child_pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=5)  # bwrap returns once its pid namespace is gone
            return
        except subprocess.TimeoutExpired:
            pass
    _kill_group(proc)
    proc.wait()


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
