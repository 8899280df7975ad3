"""FileTools never reads or writes through a symlink out of the workspace, and never blocks on a FIFO."""

import os
import threading

import pytest
from seasoned.tools import FileTools, PathOutsideWorkspace, ToolError


@pytest.fixture
def setup(tmp_path):
    ws = tmp_path / "ws"
    (ws / "pkg").mkdir(parents=True)
    (ws / "pkg" / "mod.py").write_text("token = 'inside'\n")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key.txt").write_text("token = 'TOP-SECRET'\n")
    (ws / "escape_dir").symlink_to(secret)
    (ws / "pkg" / "escape.py").symlink_to(secret / "key.txt")
    (ws / "etc").symlink_to("/etc")
    return ws, secret


def test_search_does_not_follow_symlinks_out_of_the_workspace(setup):
    ws, _ = setup
    files = FileTools(ws)
    found = files.search("token")
    assert "inside" in found and "TOP-SECRET" not in found
    assert "TOP-SECRET" not in files.search("token", "pkg")
    assert "etc/passwd" not in files.search("^root:x")  # nothing of /etc/passwd through the link
    with pytest.raises(PathOutsideWorkspace):
        files.search("token", "escape_dir")


def test_list_does_not_descend_into_symlinks(setup):
    ws, _ = setup
    listing = FileTools(ws).list(".")
    assert "pkg/mod.py" in listing
    assert "key.txt" not in listing and "passwd" not in listing


def test_view_and_edit_refuse_a_symlink_out(setup):
    ws, secret = setup
    files = FileTools(ws)
    for path in ("pkg/escape.py", "escape_dir/key.txt", "etc/passwd"):
        with pytest.raises(PathOutsideWorkspace):
            files.view(path)
        with pytest.raises(PathOutsideWorkspace):
            files.str_replace(path, "TOP-SECRET", "changed")
        with pytest.raises(PathOutsideWorkspace):
            files.create(path, "overwritten")
    assert (secret / "key.txt").read_text() == "token = 'TOP-SECRET'\n"


def test_search_skips_a_fifo_instead_of_blocking(setup):
    ws, _ = setup
    os.mkfifo(ws / "pkg" / "pipe.py")
    found = []
    worker = threading.Thread(target=lambda: found.append(FileTools(ws).search("token")), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "search blocked on a FIFO"
    assert "inside" in found[0]
    with pytest.raises(ToolError):
        FileTools(ws).view("pkg/pipe.py")


def test_edit_refuses_text_that_is_not_utf8(tmp_path):
    (tmp_path / "blob.py").write_bytes(b"x = '\xff\xfe'\n")
    with pytest.raises(ToolError, match="not UTF-8"):
        FileTools(tmp_path).str_replace("blob.py", "x", "y")
    assert (tmp_path / "blob.py").read_bytes() == b"x = '\xff\xfe'\n"
