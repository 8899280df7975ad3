"""Issue 22 row 2: what a sandboxed command leaves in its workspace must not steer the host's own writes
there. An earlier command replaces ``.tmp/_snippet.py`` by a link to a host file, ``.tmp`` by a link to a
host directory, or leaves a dangling ``.tmp``: ``run_python`` and ``run`` must neither write through the
link (as root, the host's write lands anywhere) nor fail."""

import pytest
from seasoned.tools import Limits, Sandbox
from seasoned.tools.isolation import best_isolation

MODES = ["guard"] + (["bwrap"] if best_isolation() == "bwrap" else [])


@pytest.fixture(params=MODES)
def setup(request, tmp_path):
    ws, host = tmp_path / "ws", tmp_path / "host"
    ws.mkdir()
    host.mkdir()
    (host / "config.txt").write_text("HOST FILE\n")
    box = Sandbox(ws, Limits(time_s=30, memory_mb=512), isolation=request.param)
    yield box, host
    box.cleanup()


def test_a_snippet_link_to_a_host_file_is_not_written_through(setup):
    box, host = setup
    planted = box.run(f"mkdir -p .tmp && ln -sfn {host / 'config.txt'} .tmp/_snippet.py")
    assert planted.ok, planted.render()
    result = box.run_python("print('snippet ran')")
    assert (host / "config.txt").read_text() == "HOST FILE\n"
    assert result.ok and "snippet ran" in result.stdout, result.render()


def test_a_tmp_link_to_a_host_directory_is_not_written_into(setup):
    box, host = setup
    assert box.run(f"rm -rf .tmp && ln -s {host} .tmp").ok
    result = box.run_python("print('snippet ran')")
    assert sorted(p.name for p in host.iterdir()) == ["config.txt"]
    assert result.ok and "snippet ran" in result.stdout, result.render()
    assert (box.root / ".tmp").is_dir() and not (box.root / ".tmp").is_symlink()


@pytest.mark.parametrize("leftover", ["ln -s /nonexistent/dir .tmp", "echo x > .tmp", "mkfifo .tmp"])
def test_a_dangling_link_or_file_as_tmp_does_not_break_run(setup, leftover):
    box, _ = setup
    assert box.run(f"rm -rf .tmp && {leftover}").ok
    result = box.run("echo still works")
    assert result.ok and "still works" in result.stdout, result.render()
    assert box.run_python("print(2 + 2)").stdout.strip() == "4"
