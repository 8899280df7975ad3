"""Run commands in a per-attempt workspace: time and memory limits, truncated output, no network,
nothing written outside the workspace.

Isolation, strongest available first (probed once per process):

* ``namespaces`` (Linux, root or unprivileged user namespaces): ``unshare --net --mount`` gives the
  command an empty network namespace (every connect fails) and a private mount table in which the
  workspace is the only writable mount; capabilities are dropped so it cannot be remounted.
* ``guard`` (fallback): a ``sitecustomize`` audit hook refuses socket connects and writes outside the
  workspace in Python processes. Shell commands that are not Python are then only limited, not
  confined: ``Sandbox.isolation`` says which mode is in force.

Limits (``resource.setrlimit``): address space, CPU seconds, written file size; a wall-clock timeout
kills the whole process group. Output keeps the head and tail of each stream up to ``max_output_chars``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import ToolError
from .limits import Limits

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


@dataclass
class ExecResult:
    """What one sandboxed command did."""

    stdout: str
    stderr: str
    exit_code: int | None
    timed_out: bool = False
    duration_s: float = 0.0
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    @property
    def killed_reason(self) -> str | None:
        """``time limit`` / ``memory limit`` / ``signal N`` when the command did not exit by itself."""
        if self.timed_out:
            return "time limit"
        if self.exit_code is not None and self.exit_code < 0:
            sig = -self.exit_code
            if sig in (signal.SIGXCPU, signal.SIGKILL):
                return "time limit" if sig == signal.SIGXCPU else "killed"
            return f"signal {sig}"
        if "MemoryError" in self.stderr or "Cannot allocate memory" in self.stderr:
            return "memory limit"
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


@functools.lru_cache(maxsize=1)
def namespaces_available() -> bool:
    """Can this process run a command in fresh network + mount namespaces?"""
    if not sys.platform.startswith("linux") or not (shutil.which("unshare") and shutil.which("setpriv")):
        return False
    probe = tempfile.mkdtemp(prefix="seasoned-probe-")
    try:
        cmd = _namespace_prefix() + [probe, probe, "sh", "-c", "touch ok && ! touch /probe-outside 2>/dev/null"]
        if os.geteuid() != 0:
            cmd[1:1] = ["--map-root-user"]
        done = subprocess.run(cmd, capture_output=True, timeout=20)
        return done.returncode == 0 and os.path.exists(os.path.join(probe, "ok"))
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def _namespace_prefix() -> list[str]:
    return ["unshare", "--net", "--mount", "--propagation", "private", "--", "sh", "-c", ISOLATE_SH, "isolate"]


class Sandbox:
    """A workspace directory plus the rules every command in it runs under.

    ``isolation``: ``"auto"`` (namespaces when available, else guard), ``"namespaces"`` (required) or
    ``"guard"``. ``network=True`` lifts the network ban (used for an instance's own install step).
    """

    def __init__(self, workspace: str | os.PathLike, limits: Limits | None = None, *,
                 isolation: str = "auto", env: dict[str, str] | None = None):
        self.root = Path(workspace).resolve()
        if not self.root.is_dir():
            raise ToolError(f"sandbox workspace {str(self.root)!r} does not exist or is not a directory")
        self.limits = limits or Limits()
        if isolation not in ("auto", "namespaces", "guard"):
            raise ToolError(f"sandbox isolation must be auto, namespaces or guard, got {isolation!r}")
        if isolation == "namespaces" and not namespaces_available():
            raise ToolError("sandbox isolation 'namespaces' requested but unshare/setpriv do not work here")
        self.isolation = "namespaces" if isolation != "guard" and namespaces_available() else "guard"
        self.extra_env = dict(env or {})
        self._guard_dir: str | None = None

    # --- environment -------------------------------------------------------------------------------
    def _guard_path(self) -> str:
        if self._guard_dir is None:
            self._guard_dir = tempfile.mkdtemp(prefix="seasoned-guard-")
            Path(self._guard_dir, "sitecustomize.py").write_text(GUARD_PY)
        return self._guard_dir

    def child_env(self, network: bool = False) -> dict[str, str]:
        tmp = self.root / ".tmp"
        tmp.mkdir(exist_ok=True)
        keep = ("PATH", "LANG", "LC_ALL", "TERM", "VIRTUAL_ENV")
        env = {k: os.environ[k] for k in keep if k in os.environ}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        bindir = str(Path(sys.executable).parent)
        if bindir not in env["PATH"].split(os.pathsep):
            env["PATH"] = bindir + os.pathsep + env["PATH"]
        env.update(HOME=str(self.root), TMPDIR=str(tmp), PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1",
                   PYTHONHASHSEED="0", MPLBACKEND="Agg", GIT_CONFIG_NOSYSTEM="1", PIP_NO_INPUT="1")
        if self.isolation == "guard" and not network:
            env["PYTHONPATH"] = self._guard_path()
            env["SEASONED_SANDBOX_ROOTS"] = os.pathsep.join([str(self.root), "/dev"])
        env.update(self.extra_env)
        return env

    def _command(self, argv: list[str], cwd: Path, network: bool) -> list[str]:
        if self.isolation != "namespaces":
            return argv
        prefix = _namespace_prefix()
        if network:
            prefix.remove("--net")
        if os.geteuid() != 0:
            prefix[1:1] = ["--map-root-user"]
        return prefix + [str(self.root), str(cwd)] + argv

    def resolve_cwd(self, cwd: str | os.PathLike | None) -> Path:
        from .files import resolve_in

        return resolve_in(self.root, cwd or ".")

    # --- running -----------------------------------------------------------------------------------
    def run(self, command: str | list[str], *, cwd: str | os.PathLike | None = None, stdin: str | None = None,
            timeout: float | None = None, network: bool = False, limits: Limits | None = None) -> ExecResult:
        """Run ``command`` (a shell string, or an argv list) in the workspace under the limits."""
        limits = limits or self.limits
        if timeout is not None:
            limits = Limits(timeout, limits.memory_mb, limits.file_size_mb, limits.max_processes,
                            limits.max_output_chars)
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else [str(a) for a in command]
        if not argv or not argv[0]:
            raise ToolError("sandbox: empty command")
        work = self.resolve_cwd(cwd)
        env = self.child_env(network)
        started = time.monotonic()
        try:
            proc = subprocess.Popen(self._command(argv, work, network), cwd=work, env=env,
                                    stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    preexec_fn=limits.preexec())
        except OSError as exc:
            return ExecResult("", f"sandbox: cannot start {argv[0]!r}: {exc}", 127)
        out, err = _Capped(proc.stdout, limits.max_output_chars), _Capped(proc.stderr, limits.max_output_chars // 2)
        if stdin is not None:
            try:
                proc.stdin.write(stdin.encode())
                proc.stdin.close()
            except OSError:
                pass
        timed_out = False
        try:
            proc.wait(timeout=limits.time_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            proc.wait()
        _kill_group(proc)  # stray children of a finished command
        stdout, cut_out = out.text()
        stderr, cut_err = err.text()
        return ExecResult(stdout, stderr, proc.returncode, timed_out, round(time.monotonic() - started, 3),
                          cut_out or cut_err)

    async def arun(self, command: str | list[str], **kwargs) -> ExecResult:
        """``run`` without blocking the event loop."""
        return await asyncio.to_thread(self.run, command, **kwargs)

    def run_python(self, code: str, *, timeout: float | None = None, filename: str = "_snippet.py",
                   stdin: str | None = None) -> ExecResult:
        """Write ``code`` to a file in the workspace and run it with this interpreter."""
        path = self.root / ".tmp" / filename
        path.parent.mkdir(exist_ok=True)
        path.write_text(code)
        return self.run([sys.executable, str(path)], timeout=timeout, stdin=stdin)

    async def arun_python(self, code: str, **kwargs) -> ExecResult:
        return await asyncio.to_thread(self.run_python, code, **kwargs)

    def cleanup(self) -> None:
        if self._guard_dir:
            shutil.rmtree(self._guard_dir, ignore_errors=True)
            self._guard_dir = None


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
