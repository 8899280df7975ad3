"""File view / search / edit confined to a workspace (path traversal refused with a clear error).

Every path is resolved (symlinks included) and must stay inside the workspace; the final file is then
opened without following a symlink, so a link swapped in after the check is refused too. ``search`` and
``list`` never follow symlinks (a link to ``/etc`` or to a file outside is skipped) and read only
regular files up to ``MAX_SEARCH_BYTES`` (a FIFO or a device would block or never end); ``search``'s
regular expression is matched with a time cap (``SEARCH_SECONDS``).
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

import regex
from seasoned.errors import PathOutsideWorkspace, ToolError

SKIP_DIRS = {".git", ".tmp", "__pycache__", ".venv", "node_modules", ".pytest_cache"}
MAX_SEARCH_BYTES = 4 * 1024 * 1024
MAX_PATTERN_CHARS = 2000
SEARCH_SECONDS = 2.0  # CPU seconds of matching per search


def resolve_in(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """``root / path`` fully resolved (symlinks too); raises ``PathOutsideWorkspace`` if it leaves ``root``."""
    base = Path(root).resolve()
    raw = str(path).strip() or "."
    target = (base / raw).resolve()
    if target != base and base not in target.parents:
        raise PathOutsideWorkspace(f"path {raw!r} is outside the workspace; use a path inside it, "
                                   f"relative to the workspace root")
    return target


def _walk(top: Path):
    """Regular files under ``top`` in sorted order; symlinks and tool directories (.git, caches) skipped."""
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not os.path.islink(os.path.join(dirpath, d)))
        for name in sorted(filenames):
            path = Path(dirpath, name)
            try:
                if stat.S_ISREG(path.lstat().st_mode):
                    yield path
            except OSError:
                continue


def read_inside(root: Path, path: Path, *, limit: int = -1, errors: str = "strict") -> str:
    """Text of the regular file ``path`` (already resolved inside ``root``), opened without following a
    symlink; ``ToolError`` if it is not a regular file (any more), or not UTF-8 with ``errors="strict"``."""
    name = str(path.relative_to(root))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise ToolError(f"cannot read {name!r}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ToolError(f"{name!r} is not a regular file")
        data = fh.read(limit)
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError:
        raise ToolError(f"{name!r} is not UTF-8 text") from None


def write_inside(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (resolved inside the workspace) without following a symlink swapped in;
    a new file gets the owner of its directory."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    parent_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        adopt(fd, parent_fd)
    finally:
        os.close(parent_fd)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def private_dir(root: Path, name: str) -> int:
    """An fd of the directory ``root/name``, made a real directory if a command left a symlink, a file
    or anything else there (a sandboxed command can replace any path of its workspace: the host must not
    write through what it finds). ``name`` is one path component; the caller closes the fd."""
    _check_component(name)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(3):  # a concurrent command could swap it again between the calls
            try:
                return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root_fd)
            except FileNotFoundError:
                pass
            except OSError:  # ELOOP (a symlink) or ENOTDIR (a file, a FIFO...): not ours to follow
                _remove_at(root_fd, name)
            try:
                os.mkdir(name, 0o755, dir_fd=root_fd)
                made = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root_fd)
                adopt(made, root_fd)
                return made
            except FileExistsError:
                continue
        raise ToolError(f"cannot make {name!r} a directory in the workspace {str(root)!r}")
    finally:
        os.close(root_fd)


def write_new_at(dir_fd: int, name: str, data: bytes) -> None:
    """Replace whatever ``name`` is in the directory ``dir_fd`` by a new regular file holding ``data``
    (never written through a symlink or into an existing file another process holds open)."""
    _check_component(name)
    _remove_at(dir_fd, name)
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
    adopt(fd, dir_fd)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def adopt(fd: int, parent_fd: int) -> None:
    """Give what the host just made (``fd``) the owner of its directory (``parent_fd``): run by root, a
    sandbox runs as another user (``unprivileged.py``), and it must be able to change the files the host
    writes into its workspace."""
    if os.geteuid() != 0:
        return
    owner, parent = os.fstat(fd), os.fstat(parent_fd)
    if (owner.st_uid, owner.st_gid) != (parent.st_uid, parent.st_gid):
        os.fchown(fd, parent.st_uid, parent.st_gid)


def make_dirs(path: Path) -> None:
    """``path.mkdir(parents=True, exist_ok=True)``, each new directory owned like its parent (``adopt``)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            continue
        parent_fd = os.open(directory.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            made = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                adopt(made, parent_fd)
            finally:
                os.close(made)
        finally:
            os.close(parent_fd)


def _check_component(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ToolError(f"{name!r} must be a plain file name")


def _remove_at(dir_fd: int, name: str) -> None:
    """Remove ``name`` (a file, a link or a whole directory) from ``dir_fd``; nothing if it is absent."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        shutil.rmtree(name, dir_fd=dir_fd)
    except PermissionError:  # EPERM: unlink of a directory on Linux
        if stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
            shutil.rmtree(name, dir_fd=dir_fd)
        else:
            raise


class FileTools:
    """The file actions an agent gets: ``view``, ``search``, ``create``, ``str_replace``, ``list``."""

    def __init__(self, root: str | os.PathLike, *, max_chars: int = 8000):
        self.root = Path(root).resolve()
        self.max_chars = max_chars

    def _rel(self, path: Path) -> str:
        return str(path.relative_to(self.root)) or "."

    def view(self, path: str = ".", start: int | None = None, end: int | None = None) -> str:
        """A file with line numbers (optionally lines ``start``..``end``), or a directory listing."""
        target = resolve_in(self.root, path)
        if target.is_dir():
            return self.list(path)
        if not target.is_file():
            raise ToolError(f"view: no file {path!r} in the workspace")
        lines = read_inside(self.root, target, errors="replace").splitlines()
        first = max(int(start or 1), 1)
        last = min(int(end or len(lines)), len(lines))
        shown = "\n".join(f"{i:5d}  {lines[i - 1]}" for i in range(first, last + 1))
        if len(shown) > self.max_chars:
            shown = shown[: self.max_chars] + f"\n... [cut: view a smaller range, file has {len(lines)} lines]"
        return f"{self._rel(target)} (lines {first}-{last} of {len(lines)})\n{shown}"

    def list(self, path: str = ".", limit: int = 300) -> str:
        """Files under ``path`` (recursively, hidden tool directories skipped)."""
        target = resolve_in(self.root, path)
        if not target.is_dir():
            raise ToolError(f"list: {path!r} is not a directory in the workspace")
        found: list[str] = []
        for file in _walk(target):
            found.append(self._rel(file))
            if len(found) >= limit:
                return "\n".join(found) + f"\n... [more than {limit} files]"
        return "\n".join(found) or "(empty)"

    def search(self, pattern: str, path: str = ".", limit: int = 100, seconds: float = SEARCH_SECONDS) -> str:
        """Lines matching the regular expression ``pattern`` as ``file:line: text``.

        A model writes the pattern: one with catastrophic backtracking (``^(a|a)+$``) would hold the thread
        for hours. The ``regex`` module stops a match after a time (CPU seconds) and releases the GIL while
        it matches; the whole search stops after ``seconds`` and says so."""
        if len(pattern) > MAX_PATTERN_CHARS:
            raise ToolError(f"search: the pattern is longer than {MAX_PATTERN_CHARS} characters")
        try:
            compiled = regex.compile(pattern)
        except (regex.error, ValueError, OverflowError, RecursionError) as exc:
            raise ToolError(f"search: bad regular expression {pattern!r}: {exc}") from None
        target = resolve_in(self.root, path)
        files = [target] if target.is_file() else list(_walk(target))
        hits: list[str] = []
        deadline = time.process_time() + seconds
        for file in files:
            try:
                if file.stat().st_size > MAX_SEARCH_BYTES:
                    continue
                text = read_inside(self.root, file, limit=MAX_SEARCH_BYTES)
            except (OSError, ToolError):
                continue
            for number, line in enumerate(text.splitlines(), 1):
                try:
                    found = compiled.search(line, timeout=max(deadline - time.process_time(), 0.001),
                                            concurrent=True)
                except TimeoutError:
                    stopped = (f"... [search stopped after {seconds:g} s of matching at {self._rel(file)}:{number}: "
                               "simplify the pattern]")
                    return "\n".join([*hits, stopped])
                if found:
                    hits.append(f"{self._rel(file)}:{number}: {line.strip()[:200]}")
                    if len(hits) >= limit:
                        return "\n".join(hits) + f"\n... [more than {limit} matches]"
        return "\n".join(hits) or f"no match for {pattern!r}"

    def create(self, path: str, content: str) -> str:
        """Write a whole file (parents created)."""
        target = resolve_in(self.root, path)
        if target.is_dir():
            raise ToolError(f"create: {path!r} is a directory")
        make_dirs(target.parent)
        write_inside(target, content)
        return f"wrote {self._rel(target)} ({len(content.splitlines())} lines)"

    def str_replace(self, path: str, old: str, new: str) -> str:
        """Replace the one occurrence of ``old`` in a file by ``new``."""
        target = resolve_in(self.root, path)
        if not target.is_file():
            raise ToolError(f"edit: no file {path!r} in the workspace")
        text = read_inside(self.root, target)
        count = text.count(old) if old else 0
        if count != 1:
            stripped = old.strip()
            if count == 0 and stripped and text.count(stripped) == 1:
                old, count = stripped, 1
                new = new.strip()
        if count == 0:
            raise ToolError(f"edit: the text to replace was not found in {path!r} (view the file and copy it exactly)")
        if count > 1:
            raise ToolError(f"edit: the text to replace occurs {count} times in {path!r}; include more context")
        write_inside(target, text.replace(old, new, 1))
        line = text[: text.index(old)].count("\n") + 1
        return f"edited {self._rel(target)} at line {line}"
