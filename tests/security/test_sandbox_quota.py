"""Issue 22 row 18: a workspace command wrote 1.3 GB to the host disk (only a 64 MB per-file cap), and 8
processes held 3.3 GB (a v1 memory cgroup was there). Now the memory of all a command's processes is
capped by a memory cgroup, and the workspaces the product makes (SWE attempts, scratch workspaces) are
size-capped filesystems; ``seasoned envs list`` says which limits are in force here."""

import contextlib
import sys
import tempfile
from pathlib import Path

import pytest
from seasoned.cli import main
from seasoned.envs import Action
from seasoned.envs.swe import SWEEnv
from seasoned.tools import Limits, Sandbox, diskcap
from seasoned.tools.isolation import describe_isolation, isolation_report

HOLDERS = """
import multiprocessing, time
def hold():
    block = bytearray(150 << 20)
    block[::4096] = b"x" * len(block[::4096])  # touch every page
    time.sleep(2)
workers = [multiprocessing.Process(target=hold) for _ in range(4)]
for w in workers: w.start()
for w in workers: w.join()
print("exit codes", [w.exitcode for w in workers])
"""


def test_memory_across_processes_is_capped(tmp_path):
    box = Sandbox(tmp_path, Limits(time_s=60, memory_mb=1024, total_memory_mb=400))
    if box.memory_limit == "none":
        pytest.skip("no writable memory cgroup on this machine")
    result = box.run_python(HOLDERS)  # 4 x 150 MB under 400 MB for all: someone is stopped
    assert result.memory_exceeded and result.killed_reason == "memory limit", result.render()
    assert "-9" in result.stdout, result.render()


def test_a_private_tmpfs_counts_against_the_memory_cap(tmp_path):
    box = Sandbox(tmp_path, Limits(time_s=60, memory_mb=1024, total_memory_mb=200, tmpfs_mb=512))
    if box.memory_limit == "none" or box.isolation != "bwrap":
        pytest.skip("needs bwrap's private /tmp and a memory cgroup")
    result = box.run("for i in 1 2 3 4 5 6; do dd if=/dev/zero of=/tmp/fill$i bs=1M count=60 2>/dev/null; done")
    assert result.killed_reason == "memory limit", result.render()


needs_disk = pytest.mark.skipif(not diskcap.available(), reason="no capped filesystems here (needs root, "
                                                                 "mkfs.ext4 and a loop device)")


@needs_disk
def test_a_capped_directory_refuses_writes_past_its_size():
    capped = diskcap.CappedDir.create(64)
    try:
        box = Sandbox(capped.path, Limits(time_s=60, file_size_mb=48))
        result = box.run("for i in 1 2 3 4; do dd if=/dev/zero of=f$i bs=1M count=40 2>&1 | grep -v records; done; "
                         "du -sm . | cut -f1")
        assert "No space left on device" in result.stdout, result.render()
        assert int(result.stdout.split()[-1]) <= 64
    finally:
        capped.remove()
    assert not capped.root.exists()
    assert str(capped.path) not in Path("/proc/self/mounts").read_text()


@needs_disk
async def test_an_swe_attempt_cannot_fill_the_host_disk():
    env = SWEEnv(disk_mb=96)
    session = await env.open(env.get_task("seasoned-fixtures__tinysemver-1"))
    try:
        command = "for i in 1 2 3; do dd if=/dev/zero of=big$i bs=1M count=60 2>&1 | grep -v records; done"
        observed = await session.step(Action("bash", {"command": command}))
        assert "No space left on device" in observed.text, observed.text
    finally:
        session.close()
    assert not session.workspace.attempt.root.exists()


@needs_disk
def test_scratch_workspaces_are_inside_the_capped_area():
    root = diskcap.scratch_root()
    workspace = tempfile.mkdtemp(dir=root)
    assert root and workspace.startswith(root + "/")
    assert f" {root} ext4 " in Path("/proc/self/mounts").read_text()


def test_envs_list_names_the_limits_in_force(monkeypatch, capsys):
    report = isolation_report()
    line = describe_isolation()
    assert f"memory across processes: {report['memory_limit']}" in line
    assert f"workspace disk: {report['disk_limit']}" in line
    monkeypatch.setattr(sys, "argv", ["seasoned", "envs", "list"])
    monkeypatch.setenv("COLUMNS", "300")
    with contextlib.suppress(SystemExit):
        main()
    assert f"memory across processes: {report['memory_limit']}" in capsys.readouterr().out
