"""The sandbox: limits, no network, nothing written outside the workspace, traversal refused."""

import socket
import sys

import pytest
from seasoned.tools import FileTools, Limits, PathOutsideWorkspace, Sandbox, ToolError, namespaces_available
from seasoned.tools.isolation import GUARD_PY, bwrap_available, describe_isolation

MODES = ["guard"] + (["namespaces"] if namespaces_available() else []) + (["bwrap"] if bwrap_available() else [])


@pytest.fixture(params=MODES)
def box(request, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    sandbox = Sandbox(ws, Limits(time_s=5, memory_mb=256, max_output_chars=2000), isolation=request.param)
    yield sandbox
    sandbox.cleanup()


def test_runs_commands_in_the_workspace(box):
    result = box.run("echo hello > f.txt && cat f.txt && pwd")
    assert result.ok and "hello" in result.stdout and str(box.root) in result.stdout
    assert (box.root / "f.txt").read_text() == "hello\n"


def test_python_write_outside_workspace_fails(box, tmp_path):
    outside = tmp_path / "outside.txt"
    result = box.run_python(f"open({str(outside)!r}, 'w').write('x')")
    assert not outside.exists()
    if box.isolation != "bwrap":  # under bwrap the write lands in the sandbox's private /tmp, then vanishes
        assert not result.ok
    inside = box.run_python("open('inside.txt', 'w').write('ok'); print(open('inside.txt').read())")
    assert inside.ok and inside.stdout.strip() == "ok"


def test_shell_write_outside_workspace_fails_with_namespaces(tmp_path):
    if not namespaces_available():
        pytest.skip("namespaces (unshare/setpriv) are not available here: shell writes are not confined")
    ws = tmp_path / "ws"
    ws.mkdir()
    box = Sandbox(ws, isolation="namespaces")
    result = box.run(f"echo x > {tmp_path / 'escape.txt'}; echo y > /dev/shm/seasoned-escape; touch ok")
    assert not (tmp_path / "escape.txt").exists()
    assert "Read-only file system" in result.stderr
    assert (ws / "ok").exists()


def test_infinite_loop_is_killed_at_the_time_limit(box):
    result = box.run_python("while True:\n    pass\n", timeout=1.5)
    assert not result.ok
    assert result.killed_reason == "time limit"
    assert result.duration_s < 5


def test_memory_bomb_is_killed(box):
    result = box.run_python("x = bytearray(2 * 1024 ** 3)\nprint('allocated')")
    assert not result.ok
    assert "allocated" not in result.stdout
    assert result.killed_reason == "memory limit"


def test_network_connect_fails(box):
    # A local listening socket: reachable from here, not from the sandbox.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        code = (f"import socket\ns = socket.socket()\ns.settimeout(3)\ns.connect(('127.0.0.1', {port}))\n"
                f"print('connected')")
        result = box.run_python(code)
    finally:
        server.close()
    assert not result.ok
    assert "connected" not in result.stdout
    assert "Error" in result.stderr


def test_output_is_truncated_head_and_tail(box):
    result = box.run_python("for i in range(100000):\n    print(i)\n")
    assert result.ok and result.truncated
    assert result.stdout.startswith("0\n1\n") and result.stdout.rstrip().endswith("99999")
    assert len(result.stdout) < 2500


def test_guard_code_is_valid_python():
    compile(GUARD_PY, "sitecustomize.py", "exec")


def test_missing_workspace_is_a_clear_error(tmp_path):
    with pytest.raises(ToolError, match="does not exist"):
        Sandbox(tmp_path / "nope")
    with pytest.raises(ToolError, match="isolation must be one of"):
        Sandbox(tmp_path, isolation="docker")


def test_auto_isolation_prefers_bwrap_and_is_reported(tmp_path):
    expected = "bwrap" if bwrap_available() else "namespaces" if namespaces_available() else "guard"
    assert Sandbox(tmp_path).isolation == expected
    line = describe_isolation()
    assert line.startswith(f"sandbox: {expected} (") and "process limit:" in line
    assert ("FALLBACK" in line) == (expected != "bwrap")


def test_stdin_cwd_and_timeout_argument(box):
    (box.root / "sub").mkdir()
    result = box.run("cat; pwd", cwd="sub", stdin="from stdin\n", timeout=10)
    assert result.ok and "from stdin" in result.stdout and result.stdout.strip().endswith("/sub")
    with pytest.raises(PathOutsideWorkspace):
        box.run("true", cwd="..")


def test_file_tools_refuse_traversal(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (tmp_path / "secret.txt").write_text("secret")
    (ws / "link").symlink_to(tmp_path)
    files = FileTools(ws)
    for bad in ("../secret.txt", str(tmp_path / "secret.txt"), "link/secret.txt", "a/../../secret.txt"):
        with pytest.raises(PathOutsideWorkspace, match="outside the workspace"):
            files.view(bad)
        with pytest.raises(PathOutsideWorkspace):
            files.create(bad, "x")
    assert (tmp_path / "secret.txt").read_text() == "secret"


def test_file_tools_view_edit_search(tmp_path):
    files = FileTools(tmp_path)
    files.create("pkg/mod.py", "def f():\n    return 1\n\ndef g():\n    return 1\n")
    assert "    2      return 1" in files.view("pkg/mod.py", 1, 2)
    with pytest.raises(ToolError, match="occurs 2 times"):
        files.str_replace("pkg/mod.py", "return 1", "return 2")
    assert "line 1" in files.str_replace("pkg/mod.py", "def f():\n    return 1", "def f():\n    return 2")
    assert "return 2" in (tmp_path / "pkg/mod.py").read_text()
    assert "pkg/mod.py:4:" in files.search(r"def g")
    with pytest.raises(ToolError, match="not found"):
        files.str_replace("pkg/mod.py", "nothing like this", "x")
    assert "pkg/mod.py" in files.list(".")


def test_sandbox_uses_this_interpreter(box):
    result = box.run("python -c 'import sys; print(sys.executable)'")
    assert result.ok and sys.executable.rsplit("/", 1)[0] in result.stdout


def test_without_bwrap_the_fallback_is_reported(monkeypatch, tmp_path, caplog):
    from seasoned.tools import bwrap, isolation

    broken = bwrap.Status(None, "", False, "bwrap is not installed (Debian package `bubblewrap`)")
    monkeypatch.setattr(bwrap, "status", lambda: broken)
    isolation.best_isolation.cache_clear()
    try:
        with caplog.at_level("WARNING"):
            box = Sandbox(tmp_path)
        assert box.isolation in ("namespaces", "guard")
        assert "falling back" in caplog.text and "not installed" in caplog.text
        line = describe_isolation()
        assert "FALLBACK" in line and "bubblewrap" in line
        with pytest.raises(ToolError, match="'bwrap' requested but bwrap is not installed"):
            Sandbox(tmp_path, isolation="bwrap")
        assert box.run("echo still runs").stdout.strip() == "still runs"
    finally:
        isolation.best_isolation.cache_clear()


def test_seccomp_program_denies_each_listed_call_and_foreign_abis():
    import struct

    from seasoned.tools import seccomp

    assert seccomp.filter_program("riscv64") is None
    for machine, extra in (("x86_64", 1), ("aarch64", 0)):
        program = seccomp.filter_program(machine)
        insns = [struct.unpack("=HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
        denied = seccomp.denied_syscalls(machine)
        assert len(insns) == 4 + extra + len(set(denied.values())) + 2
        assert insns[-2][3] == 0x7FFF0000 and insns[-1][3] == 0x00050000 | 1  # allow; errno EPERM
        for index, (code, jt, _, k) in enumerate(insns):
            if code == 0x15 and index > 1:  # each listed call jumps exactly to the final deny
                assert index + 1 + jt == len(insns) - 1 and k in denied.values()
