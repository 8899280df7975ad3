"""Issue 22 row 1: code in the bwrap sandbox must not reach host-wide kernel settings (a ``core_pattern``
starting with a pipe runs a program as host root at the next core dump). Tried from model code
(``Sandbox.run_python``), from ``python_tool()`` and from a JSONL ``install`` step (network on). And run
by root, the sandbox is not host root (``--uid`` alone only renames root inside)."""

import asyncio
import json
import os

import pytest
from seasoned.tools import FileTools, Limits, Sandbox, ToolError, bwrap, unprivileged
from seasoned.tools.isolation import isolation_report
from seasoned.tools.user_tools import python_tool

STATUS = bwrap.status()
pytestmark = pytest.mark.skipif(not STATUS.usable, reason=f"bwrap unusable here: {STATUS.reason}")

SYSCTLS = ["/proc/sys/kernel/core_pattern", "/proc/sys/fs/suid_dumpable", "/proc/sys/kernel/randomize_va_space",
           "/proc/sys/vm/overcommit_memory"]
# Opening for writing changes nothing by itself: the probe never writes a value.
PROBE = f"""
import json, os
opened = []
for path in {SYSCTLS!r} + ["/proc/sysrq-trigger"]:
    try:
        os.close(os.open(path, os.O_WRONLY))
        opened.append(path)
    except OSError:
        pass
print("OPENED=" + json.dumps(opened))
"""


def _opened(output: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.startswith("OPENED="))
    return json.loads(line[len("OPENED="):])


@pytest.fixture
def box(tmp_path):
    sandbox = Sandbox(tmp_path, Limits(time_s=30, memory_mb=512), isolation="bwrap")
    yield sandbox
    sandbox.cleanup()


def test_model_code_cannot_open_host_sysctls_for_writing(box):
    result = box.run_python(PROBE)
    assert result.ok, result.render()
    assert _opened(result.stdout) == []


def test_an_install_step_with_network_cannot_either(box):
    script = box.root / "probe.py"
    script.write_text(PROBE)
    result = box.run(["python3", str(script)], network=True)
    assert result.ok, result.render()
    assert _opened(result.stdout) == []


def test_python_tool_cannot_either():
    tool = python_tool(Limits(time_s=30, memory_mb=512))
    output = asyncio.run(tool.run({"code": PROBE}))
    assert _opened(output) == [], output


def test_sysctls_stay_readable_and_sys_is_absent(box):
    result = box.run("cat /proc/sys/kernel/randomize_va_space; ls /sys 2>&1 | head -1")
    assert result.stdout.splitlines()[0] in {"0", "1", "2"}
    assert "No such file" in result.stdout or result.stdout.splitlines()[1:] == []


# --- not host root: run by root, bwrap starts as an unprivileged host user ---------------------------------
needs_root_drop = pytest.mark.skipif(os.geteuid() != 0 or not STATUS.unprivileged,
                                     reason="only when this process is root and unprivileged user namespaces work")


@needs_root_drop
def test_the_sandbox_is_not_host_root(box):
    host_file = box.root / "owned-by-root.txt"
    host_file.write_text("root's\n")
    os.chown(host_file, 0, 0)  # a root-owned file on a writable mount: host root could write it
    result = box.run("id -u; echo changed >> owned-by-root.txt; echo made > made.txt")
    assert result.stdout.split()[0] == "0"  # uid 0 inside, for pip and git
    assert host_file.read_text() == "root's\n" and "Permission denied" in result.stderr
    assert (box.root / "made.txt").stat().st_uid == unprivileged.SANDBOX_UID
    assert f"uid {unprivileged.SANDBOX_UID}" in isolation_report()["host_user"]


@needs_root_drop
def test_files_the_host_writes_stay_writable_by_the_sandbox(box):
    FileTools(box.root).create("pkg/new.py", "x = 1\n")
    result = box.run("echo 'y = 2' >> pkg/new.py && touch pkg/other.py && cat pkg/new.py")
    assert result.ok and "y = 2" in result.stdout, result.render()
    assert box.run_python("print('snippet')").stdout.strip() == "snippet"


@needs_root_drop
@pytest.mark.parametrize("shared", ["/tmp", "/etc", "/usr/local"])
def test_a_shared_or_system_directory_is_never_handed_to_the_sandbox_user(shared):
    before = os.stat(shared).st_uid
    with pytest.raises(ToolError, match="not a directory of its own"):
        Sandbox(shared, isolation="bwrap")
    assert os.stat(shared).st_uid == before
