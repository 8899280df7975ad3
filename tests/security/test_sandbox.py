"""Attacks on the bubblewrap sandbox (issue 14): each must fail. Skipped with the reason when bwrap
cannot run here (CI installs it through scripts/install-system-deps.sh)."""

import errno
import os
import platform
import signal
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from seasoned.benchmarks.sandbox_attacks import procs_with
from seasoned.tools import Limits, Sandbox, ToolError, bwrap
from seasoned.tools.isolation import isolation_report

REPO = Path(__file__).resolve().parents[2]
STATUS = bwrap.status()
pytestmark = pytest.mark.skipif(not STATUS.usable, reason=f"bwrap unusable here: {STATUS.reason}")


@pytest.fixture
def ws(tmp_path):
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest.fixture
def box(ws):
    sandbox = Sandbox(ws, Limits(time_s=20, memory_mb=512, max_processes=64), isolation="bwrap")
    yield sandbox
    sandbox.cleanup()


def _marker() -> str:
    """A unique ``sleep`` duration: how a test finds its own processes in the host's /proc."""
    return f"{500 + uuid.uuid4().int % 400}.{uuid.uuid4().int % 10 ** 6:06d}"


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def test_sandbox_uses_bwrap_and_says_so(box):
    assert box.isolation == "bwrap"
    assert isolation_report()["isolation"] == "bwrap"
    status = box.run("grep -E '^(CapEff|NoNewPrivs)' /proc/self/status")
    assert "CapEff:\t0000000000000000" in status.stdout and "NoNewPrivs:\t1" in status.stdout


def test_cannot_read_seasoned_home(box):
    home = Path(os.environ.get("SEASONED_HOME") or Path.home() / ".seasoned")
    home.mkdir(parents=True, exist_ok=True)
    secret = home / f"secret-{uuid.uuid4().hex[:8]}.db"
    secret.write_text("TOP-SECRET-MEMORY")
    try:
        result = box.run(["cat", str(secret)])
        listing = box.run(["ls", "-a", str(home)])
    finally:
        secret.unlink()
    assert result.exit_code != 0 and "TOP-SECRET" not in result.stdout
    assert secret.name not in listing.stdout


def test_cannot_read_home_directory(box):
    fd, name = tempfile.mkstemp(prefix=".seasoned-sandbox-test-", dir=Path.home())
    os.write(fd, b"TOP-SECRET-HOME")
    os.close(fd)
    try:
        result = box.run(["cat", name])
        listing = box.run(["ls", "-a", str(Path.home())])
    finally:
        os.unlink(name)
    assert result.exit_code != 0 and "TOP-SECRET" not in result.stdout
    assert Path(name).name not in listing.stdout


def test_cannot_read_repository_or_swe_instances_with_their_reference_patch(box):
    for path in (REPO / "envs" / "fixtures" / "swe" / "instances.jsonl", REPO / "pyproject.toml",
                 Path(__file__)):
        assert path.exists()
        result = box.run(["cat", str(path)])
        assert result.exit_code != 0 and result.stdout == "", path


def test_files_created_in_dev_stay_private(box):
    name = Path(f"/dev/seasoned-probe-{uuid.uuid4().hex[:8]}")
    try:
        box.run(f"touch {name}; mkdir /dev/seasoned-dir-probe")
        assert not name.exists()
        assert not Path("/dev/seasoned-dir-probe").exists()
    finally:
        for path in (name, Path("/dev/seasoned-dir-probe")):
            if path.is_dir():
                path.rmdir()
            elif path.exists():
                path.unlink()


def test_host_unix_sockets_are_unreachable(box, tmp_path):
    path = tmp_path / "host.sock"  # outside the workspace, like /run/*.sock
    abstract = f"\0seasoned-test-{uuid.uuid4().hex[:8]}"
    servers = []
    for address in (str(path), abstract):
        server = socket.socket(socket.AF_UNIX)
        server.bind(address)
        server.listen(1)
        servers.append(server)
    try:
        for address in (str(path), abstract):
            code = (f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.settimeout(3)\n"
                    f"s.connect({address!r})\nprint('CONNECTED')")
            result = box.run_python(code)
            assert "CONNECTED" not in result.stdout and not result.ok, address
    finally:
        for server in servers:
            server.close()


def test_no_network_to_the_host(box):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        port = server.getsockname()[1]
        result = box.run_python(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), 3)\nprint('CONNECTED')")
    finally:
        server.close()
    assert not result.ok and "CONNECTED" not in result.stdout
    assert "ConnectionRefusedError" in result.stderr or "unreachable" in result.stderr


def test_fork_bomb_stops_at_the_process_limit(ws):
    box = Sandbox(ws, Limits(time_s=30, memory_mb=512, max_processes=32), isolation="bwrap")
    if box.process_limit == "none":
        pytest.skip("no process limit here: root without a writable pids cgroup (RLIMIT_NPROC does not "
                    "apply to uid 0)")
    marker = _marker()
    code = ("import os\nn = 0\nfor i in range(300):\n    try:\n        pid = os.fork()\n    except OSError:\n"
            f"        break\n    if pid == 0:\n        os.execv('/bin/sleep', ['sleep', '{marker}'])\n    n += 1\n"
            "print(n)")
    try:
        result = box.run_python(code)
        left = procs_with(marker)
    finally:
        _kill(procs_with(marker))
    assert result.ok, result.render()
    assert 0 < int(result.stdout) < 32
    assert left == []  # and nothing of it outlives run()
    assert subprocess.run(["true"], check=False).returncode == 0  # the host still forks


def test_setsid_and_double_fork_do_not_survive_run(box):
    marker = _marker()
    try:
        result = box.run(f"setsid sleep {marker} >/dev/null 2>&1 </dev/null & "
                         f"(sh -c 'sleep {marker} >/dev/null 2>&1 </dev/null &' &); "
                         f"nohup sleep {marker} >/dev/null 2>&1 & echo started")
        left = procs_with(marker)
    finally:
        _kill(procs_with(marker))
    assert result.ok and "started" in result.stdout
    assert left == []


def test_everything_is_killed_at_the_time_limit(box):
    marker = _marker()
    try:
        result = box.run(f"setsid sleep {marker} >/dev/null 2>&1 </dev/null & sleep {marker}", timeout=1)
        left = procs_with(marker)
    finally:
        _kill(procs_with(marker))
    assert result.timed_out and result.killed_reason == "time limit"
    assert left == []


def test_writes_outside_the_workspace_do_not_reach_the_host(box, ws, tmp_path):
    targets = [tmp_path / "escape.txt", REPO / f"escape-{uuid.uuid4().hex[:8]}.txt",
               Path(tempfile.gettempdir()) / f"escape-{uuid.uuid4().hex[:8]}.txt"]
    result = box.run("; ".join(f"echo x > {t}" for t in targets) + "; echo y > /usr/escape.txt; echo ok > inside.txt")
    try:
        assert [t for t in targets if t.exists()] == []
        assert not Path("/usr/escape.txt").exists()
        assert (ws / "inside.txt").read_text() == "ok\n"
        assert "Read-only file system" in result.stderr  # /usr is mounted read-only
    finally:
        for target in targets:
            target.unlink(missing_ok=True)


def test_extra_binds_are_read_only_or_writable_as_asked(ws, tmp_path):
    cache, out = tmp_path / "wheel-cache", tmp_path / "out"
    cache.mkdir()
    out.mkdir()
    (cache / "pkg.whl").write_text("wheel")
    box = Sandbox(ws, isolation="bwrap", ro_binds=[cache], rw_binds=[out])
    result = box.run(f"cat {cache}/pkg.whl; touch {cache}/new; echo done > {out}/result.txt")
    assert "wheel" in result.stdout
    assert not (cache / "new").exists() and "Read-only file system" in result.stderr
    assert (out / "result.txt").read_text() == "done\n"
    with pytest.raises(ToolError, match="must be an existing absolute path"):
        Sandbox(ws, isolation="bwrap", ro_binds=[tmp_path / "missing"])
    with pytest.raises(ToolError, match="whole filesystem"):
        Sandbox(ws, isolation="bwrap", ro_binds=["/"])


def test_signals_are_reported_like_other_modes(box):
    result = box.run("kill -9 $$")
    assert result.exit_code == -signal.SIGKILL and result.killed_reason == "killed"


@pytest.mark.skipif(not STATUS.seccomp, reason="this bwrap/kernel/machine has no seccomp filter here")
@pytest.mark.skipif(platform.machine() not in ("x86_64", "aarch64"), reason="syscall table for x86_64/aarch64")
def test_seccomp_refuses_io_uring_and_keyrings(box):
    code = ("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "for nr in (425, {keyctl}):\n    r = libc.syscall(nr, 0, 0, 0, 0, 0)\n"
            "    print(r, ctypes.get_errno())\n").format(keyctl=250 if platform.machine() == "x86_64" else 219)
    result = box.run_python(code)
    assert result.ok, result.render()
    assert result.stdout.split() == ["-1", str(errno.EPERM), "-1", str(errno.EPERM)]


@pytest.mark.skipif(not STATUS.disable_userns, reason="this bwrap cannot disable user namespaces")
def test_no_new_user_namespaces_inside(box):
    result = box.run("unshare --user true")
    assert result.exit_code != 0
