"""What a bubblewrap-sandboxed command sees, as a ``bwrap`` command line, and whether bwrap works here.

The view is built from an empty root, every path listed explicitly:

* read-only: ``/usr`` (and the ``/bin``, ``/lib*``, ``/sbin`` links or directories), as ``/etc`` a copy of
  the few entries programs need to start (``ETC``: no shadow, no keys, no credentials), this interpreter (``sys.prefix``, ``sys.base_prefix``,
  the venv, the directory of the real executable; with ``base_python`` only the base interpreter, its
  site-packages replaced by an empty directory), and the caller's ``ro`` paths;
* read-write: the workspace and the caller's ``rw`` paths;
* private: ``/dev`` (``--dev``, read-only but for the device nodes), ``/proc`` (``--proc``, with its
  host-wide knobs ``/proc/sys``, ``/proc/sysrq-trigger``... bound read-only over it), ``/tmp`` and
  ``/dev/shm`` (tmpfs of ``tmpfs_mb`` each); the empty root itself is read-only.

Nothing else exists inside: no home directories, no ``SEASONED_HOME``, no ``/work``, no ``/run``
(so no host unix sockets), no ``/sys``. When paths nest, the more specific one wins (binds are
applied shortest path first). ``--unshare-all`` gives fresh user, pid, network, ipc, uts and cgroup
namespaces; ``--die-with-parent``, ``--new-session`` and ``--cap-drop ALL`` always; ``--disable-userns``
and the seccomp filter (``seccomp.py``) where this bwrap and kernel support them (``status()``).
"""

from __future__ import annotations

import atexit
import functools
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import seccomp, unprivileged

TOP_LEVEL = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC = ("alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf",
       "hosts", "host.conf", "gai.conf", "localtime", "timezone", "mime.types", "os-release", "debian_version",
       "protocols", "services", "ssl", "ca-certificates", "ca-certificates.conf", "fonts", "inputrc", "magic")
ETC_NETWORK = ("resolv.conf", "pip.conf")  # only when the command is given the network
# Host-wide kernel knobs under /proc, bound read-only over the sandbox's own /proc. bwrap covers some of
# them itself only when it finds them writable *as a directory*, which /proc/sys never is: run by root it
# left every sysctl writable (core_pattern, suid_dumpable, randomize_va_space...).
PROC_READ_ONLY = ("sys", "sysrq-trigger", "irq", "bus", "fs", "driver", "acpi", "scsi", "mtrr", "pressure",
                  "sysvipc", "tty")


@dataclass(frozen=True)
class Status:
    """Whether bwrap can run here, and which optional hardening works."""

    path: str | None
    version: str
    usable: bool
    reason: str = ""
    disable_userns: bool = False
    seccomp: bool = False
    unprivileged: bool = False  # run by root, the sandbox can run as unprivileged.SANDBOX_UID instead


def too_broad(path: Path) -> bool:
    """``/``, a home directory, ``/home``, ``/root``: never bound, nor taken as a repositories directory."""
    home = Path.home().resolve()
    return path == Path("/") or path == home or path in (Path("/home"), Path("/root")) or path.parent == Path("/home")


def interpreter_paths() -> list[Path]:
    """The directories this Python needs (its prefixes, the venv, the real executable's directory)."""
    candidates = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
                  os.path.dirname(os.path.realpath(sys.executable))]
    found: list[Path] = []
    for raw in candidates:
        for path in (Path(os.path.abspath(raw)), Path(os.path.realpath(raw))):
            if path not in found and not too_broad(path) and path.exists():
                found.append(path)
    return [p for p in found if not any(_covered(p, q) for q in found if q != p)]


def base_interpreter_paths() -> list[Path]:
    """The directories the base interpreter needs (its prefixes and the real executable's directory), for
    a command that runs a venv made from it: the current venv (this product's packages) is not among them."""
    executable = getattr(sys, "_base_executable", sys.executable)
    found: list[Path] = []
    for raw in (sys.base_prefix, sys.base_exec_prefix, os.path.dirname(os.path.realpath(executable))):
        path = Path(os.path.realpath(raw))
        if path not in found and not too_broad(path) and path.exists():
            found.append(path)
    return [p for p in found if not any(_covered(p, q) for q in found if q != p)]


# The system's Python package directories (Debian's python3 and /usr/local installs).
SYSTEM_SITE_PACKAGES = ("/usr/lib/python3*/site-packages", "/usr/lib/python3*/dist-packages", "/usr/lib/python3/*-packages",
                        "/usr/local/lib/python3*/site-packages", "/usr/local/lib/python3*/dist-packages")


def base_site_packages() -> list[Path]:
    """The base interpreter's own site-packages directories and the system's (hidden from a venv's commands:
    whatever was installed there is not the venv's, and may hold a newer copy of the code under test)."""
    import site
    import sysconfig

    paths = {sysconfig.get_path(key, vars={"base": sys.base_prefix, "platbase": sys.base_exec_prefix})
             for key in ("purelib", "platlib")}
    paths.update(site.getsitepackages([sys.base_prefix, sys.base_exec_prefix]))
    paths.update(path for pattern in SYSTEM_SITE_PACKAGES for path in glob.glob(pattern))
    return sorted({Path(os.path.realpath(p)) for p in paths if p and os.path.isdir(p)})


@functools.lru_cache(maxsize=1)
def empty_dir() -> str:
    """An empty read-only directory, bound over what a command must not see."""
    target, owner = tempfile.mkdtemp(prefix="seasoned-empty-"), os.getpid()
    atexit.register(lambda: os.getpid() == owner and shutil.rmtree(target, ignore_errors=True))
    os.chmod(target, 0o555)
    return target


def _covered(path: Path, parent: Path) -> bool:
    """Is ``path`` already visible, identically, through a bind of ``parent``?"""
    return parent in path.parents and os.path.realpath(path) == os.path.join(os.path.realpath(parent),
                                                                              path.relative_to(parent))


@functools.lru_cache(maxsize=2)
def etc_copy(network: bool = False) -> str:
    """A private copy of the ``ETC`` entries (symlinks kept), made once per process and bound as ``/etc``:
    one mount instead of one per file (each bind costs about half a millisecond at start-up)."""
    target, owner = tempfile.mkdtemp(prefix="seasoned-etc-"), os.getpid()
    atexit.register(lambda: os.getpid() == owner and shutil.rmtree(target, ignore_errors=True))  # not a fork's
    names = list(ETC + (ETC_NETWORK if network else ())) + [os.path.basename(p) for p in glob.glob("/etc/python3*")]
    for name in names:
        source, dest = os.path.join("/etc", name), os.path.join(target, name)
        try:
            if os.path.islink(source) or not os.path.isdir(source):
                if os.path.lexists(source):
                    shutil.copy2(source, dest, follow_symlinks=False)
            else:
                shutil.copytree(source, dest, symlinks=True)
        except OSError:
            continue  # unreadable: the sandbox does without it
    os.chmod(target, 0o755)
    return target


@functools.lru_cache(maxsize=1)
def proc_read_only() -> tuple[str, ...]:
    """The ``PROC_READ_ONLY`` entries this kernel has."""
    return tuple(name for name in PROC_READ_ONLY if os.path.lexists(f"/proc/{name}"))


def _bind(kind: str, src: Path | str, dest: Path | str | None = None) -> tuple[int, list[str]]:
    dest = str(dest or src)
    return len(Path(dest).parts), [kind, str(src), dest]


def command(argv: list[str], *, workspace: Path, cwd: Path, ro: list[Path] = (), rw: list[Path] = (),
            network: bool = False, info_fd: int | None = None, seccomp_fd: int | None = None,
            disable_userns: bool = False, max_processes: int | None = None, tmpfs_mb: int = 512,
            base_python: bool = False, unprivileged: bool = False) -> list[str]:
    """The ``bwrap`` command line running ``argv`` in ``cwd`` (inside ``workspace``). ``base_python``: bind
    the base interpreter (its site-packages hidden) instead of this process's venv. ``unprivileged``: bwrap
    is started as an unprivileged host user (``unprivileged.py``); uid and gid 0 inside."""
    args = [shutil.which("bwrap") or "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL"]
    if disable_userns or unprivileged:
        args.append("--unshare-user")
    if unprivileged:
        args += ["--uid", "0", "--gid", "0"]
    if disable_userns:
        args.append("--disable-userns")
    if network:
        args.append("--share-net")
    size = str(int(tmpfs_mb) * 1024 * 1024)  # tmpfs is memory: bounded, or /tmp could fill the RAM
    args += ["--proc", "/proc"]
    for name in proc_read_only():
        args += ["--ro-bind", f"/proc/{name}", f"/proc/{name}"]
    args += ["--size", size, "--tmpfs", "/tmp",
             "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]
    binds: list[tuple[int, list[str]]] = [_bind("--ro-bind", "/usr")]
    for top in TOP_LEVEL:
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            binds.append(_bind("--ro-bind", top))
    binds.append(_bind("--ro-bind", etc_copy(network), "/etc"))
    if base_python:
        binds += [_bind("--ro-bind", p, p) for p in base_interpreter_paths()]
        binds += [_bind("--ro-bind", empty_dir(), p) for p in base_site_packages()]
    else:
        binds += [_bind("--ro-bind", os.path.realpath(p), p) for p in interpreter_paths()]
    binds += [_bind("--ro-bind", os.path.realpath(p), p) for p in ro]
    binds += [_bind("--bind", workspace)] + [_bind("--bind", os.path.realpath(p), p) for p in rw]
    for _, bind in sorted(binds, key=lambda item: item[0]):  # stable: the deeper path is mounted last
        args += bind
    args += ["--remount-ro", "/", "--chdir", str(cwd)]  # the empty root itself is read-only too
    if info_fd is not None:
        args += ["--info-fd", str(info_fd)]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    prefix = []
    if max_processes and (os.geteuid() != 0 or unprivileged) and shutil.which("prlimit"):
        # Set inside the sandbox's user namespace, RLIMIT_NPROC counts only the sandbox's processes.
        prefix = ["prlimit", f"--nproc={int(max_processes)}", "--"]
    return args + ["--"] + prefix + argv


def seccomp_pipe() -> int | None:
    """A readable fd holding the seccomp filter (for ``--seccomp``), or ``None`` on an unknown machine."""
    program = seccomp.filter_program()
    if program is None:
        return None
    read, write = os.pipe()
    try:
        os.write(write, program)  # a few hundred bytes: fits in the pipe buffer
    finally:
        os.close(write)
    return read


def _try(workspace: Path, *, disable_userns: bool = False, use_seccomp: bool = False,
         as_user: bool = False) -> str:
    """Run a probe command; '' on success, else what went wrong."""
    fd = seccomp_pipe() if use_seccomp else None
    if use_seccomp and fd is None:
        return "no seccomp table for this machine"
    marker = workspace / "probe.txt"
    marker.unlink(missing_ok=True)
    cmd = command(["/bin/sh", "-c", "echo ok > probe.txt"], workspace=workspace, cwd=workspace,
                  seccomp_fd=fd, disable_userns=disable_userns, unprivileged=as_user)
    preexec = None
    if as_user:
        unprivileged.hand_over(workspace)
        cmd, sources = unprivileged.stage(cmd)
        preexec = functools.partial(unprivileged.enter, sources)
    try:
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=20, pass_fds=(fd,) if fd else (),
                              stdin=subprocess.DEVNULL, preexec_fn=preexec)
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    finally:
        if fd is not None:
            os.close(fd)
    if done.returncode != 0 or not marker.exists():
        return (done.stderr or done.stdout).strip()[:300] or f"exit code {done.returncode}"
    return ""


@functools.lru_cache(maxsize=1)
def status() -> Status:
    """Probe once per process: can bwrap run a command here, with which optional hardening."""
    path = shutil.which("bwrap")
    if not sys.platform.startswith("linux"):
        return Status(path, "", False, "bubblewrap needs Linux")
    if path is None:
        return Status(None, "", False, "bwrap is not installed (Debian package `bubblewrap`)")
    try:
        version = subprocess.run([path, "--version"], check=False, capture_output=True, text=True,
                                 timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return Status(path, "", False, f"bwrap --version failed: {exc}")
    probe = Path(tempfile.mkdtemp(prefix="seasoned-bwrap-probe-")).resolve()
    try:
        problem = _try(probe)
        if problem:
            return Status(path, version, False, f"bwrap cannot start a sandbox here: {problem}")
        return Status(path, version, True, "", disable_userns=not _try(probe, disable_userns=True),
                      seccomp=not _try(probe, use_seccomp=True),
                      unprivileged=unprivileged.wanted() and not _try(probe, as_user=True))
    finally:
        shutil.rmtree(probe, ignore_errors=True)
