"""Reading unified diffs as untrusted text: the files they touch, refusing the ones a judge must never
let a candidate write (``.git/``, ``.gitattributes``, absolute or ``..`` paths), and dropping sections.

A diff is split into per-file sections by walking it line by line; hunk bodies are consumed by their
``@@ -a,b +c,d @@`` counts, so a removed line such as ``-- comment`` is never mistaken for a header."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from seasoned.errors import EnvError, UnsafeDiff

MAX_DIFF_CHARS = 20_000_000
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_NAME_HEADERS = ("--- ", "+++ ", "rename from ", "rename to ", "copy from ", "copy to ", "Index: ", "*** ")
_FORBIDDEN_PARTS = {".git"}
_FORBIDDEN_NAMES = {".gitattributes"}


@dataclass
class Section:
    """The lines of one file's part of a diff and every path its headers name (prefix not stripped)."""

    lines: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    git_header: bool = False
    hunks: int = 0

    def paths(self) -> set[str]:
        """Paths relative to the tree root (``a/``/``b/`` stripped, ``/dev/null`` left out)."""
        return {strip_prefix(n) for n in self.names if n != "/dev/null"}


def unquote(name: str) -> str:
    """A path as git prints it: C-quoted (``"a/\\303\\251 x"``) or bare; a timestamp after a tab is dropped."""
    name = name.rstrip("\n")
    if name.startswith('"'):
        out, i, raw = bytearray(), 1, name.encode("utf-8", "surrogateescape")
        escapes = {ord("n"): 10, ord("t"): 9, ord('"'): 34, ord("\\"): 92, ord("a"): 7, ord("b"): 8,
                   ord("f"): 12, ord("r"): 13, ord("v"): 11}
        while i < len(raw) and raw[i] != ord('"'):
            if raw[i] == ord("\\") and i + 1 < len(raw):
                if chr(raw[i + 1]) in "01234567" and i + 3 < len(raw):
                    out.append(int(raw[i + 1:i + 4], 8) & 0xFF)
                    i += 4
                    continue
                out.append(escapes.get(raw[i + 1], raw[i + 1]))
                i += 2
                continue
            out.append(raw[i])
            i += 1
        return out.decode("utf-8", "surrogateescape")
    return name.split("\t", 1)[0].rstrip()


def strip_prefix(name: str) -> str:
    return name[2:] if name.startswith(("a/", "b/")) else name


def _git_header_names(rest: str) -> list[str]:
    """Both names of ``diff --git a/X b/Y`` (quoted or not; ``X == Y`` resolves names with spaces)."""
    if rest.startswith('"'):
        end = rest.find('" ', 1)
        first = rest[: end + 1] if end > 0 else rest
        return [unquote(first), unquote(rest[len(first):].strip())]
    half = (len(rest) - 1) // 2
    if len(rest) % 2 == 1 and rest[half] == " " and rest[:half][2:] == rest[half + 1:][2:]:
        return [rest[:half], rest[half + 1:]]
    return [unquote(part) for part in rest.split(" ")]  # unusual header: every token is checked


def sections(diff: str) -> tuple[Section, list[Section]]:
    """``(preamble, sections)`` of a diff; text before the first file header is kept as preamble."""
    if len(diff) > MAX_DIFF_CHARS:
        raise EnvError(f"the diff is too large ({len(diff)} characters, limit {MAX_DIFF_CHARS})")
    lines = diff.splitlines(keepends=True)
    preamble = Section()
    found: list[Section] = []
    current: Section | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        hunk = _HUNK.match(line)
        if line.startswith("diff --git "):
            current = Section(git_header=True)
            current.names += _git_header_names(line[len("diff --git "):].rstrip("\n"))
            found.append(current)
        elif (line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")
              and (current is None or not current.git_header or current.hunks or
                   any(n.startswith(("---", "+++")) for n in current.lines))):
            current = Section()
            found.append(current)
        elif hunk and current is not None:
            current.hunks += 1
            old = int(hunk[2]) if hunk[2] is not None else 1
            new = int(hunk[4]) if hunk[4] is not None else 1
            current.lines.append(line)
            i += 1
            while i < len(lines) and (old > 0 or new > 0):
                body = lines[i]
                tag = body[:1]
                if tag == "-":
                    old -= 1
                elif tag == "+":
                    new -= 1
                elif tag in (" ", "\n", "\r"):
                    old, new = old - 1, new - 1
                elif tag != "\\":
                    break  # a short hunk: let the header logic read this line
                current.lines.append(body)
                i += 1
            while i < len(lines) and lines[i].startswith("\\"):
                current.lines.append(lines[i])
                i += 1
            continue
        target = current or preamble
        target.lines.append(line)
        for header in _NAME_HEADERS:
            if line.startswith(header):
                target.names.append(unquote(line[len(header):]))
        i += 1
    return preamble, found


def _forbidden(path: str) -> str | None:
    parts = path.replace("\\", "/").split("/")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return "an absolute path"
    if ".." in parts:
        return "a path with '..'"
    if any(p.lower() in _FORBIDDEN_PARTS for p in parts):
        return "the .git directory"
    if any(p.lower() in _FORBIDDEN_NAMES for p in parts):
        return ".gitattributes"
    return None


def check(diff: str) -> list[Section]:
    """The sections of ``diff``; raises ``UnsafeDiff`` when any header names a forbidden path."""
    preamble, found = sections(diff)
    for section in [preamble, *found]:
        for name in section.names:
            if name == "/dev/null":
                continue
            for candidate in (name, strip_prefix(name)):
                why = _forbidden(candidate)
                if why:
                    raise UnsafeDiff(f"the diff touches {why}: {name[:200]!r}")
    return found


def touched(diff: str) -> list[str]:
    """Every path a diff touches, in order (tree-relative)."""
    seen: dict[str, None] = {}
    for section in sections(diff)[1]:
        for path in sorted(section.paths()):
            seen.setdefault(path)
    return list(seen)


def without(diff: str, paths: set[str]) -> str:
    """``diff`` minus the sections touching any of ``paths`` (e.g. the reference tests)."""
    preamble, found = sections(diff)
    kept = [s for s in found if not (s.paths() & paths)]
    return "".join(preamble.lines) + "".join("".join(s.lines) for s in kept) if kept else ""


# --- the test harness: files whose candidate changes a judge does not apply ------------------------------
# They decide how tests are collected, run and reported, not what the code under test does: a candidate
# that changes them could forge the verdict (a conftest.py hook that marks every test passed).
_HARNESS_NAMES = {
    "conftest.py": "a conftest.py (pytest plugin)",
    "pytest.ini": "pytest configuration", ".pytest.ini": "pytest configuration",
    "pytest.toml": "pytest configuration", ".pytest.toml": "pytest configuration",
    "sitecustomize.py": "an interpreter start-up file", "usercustomize.py": "an interpreter start-up file",
    "tests.py": "a test module",
}
_SHARED_CONFIG = {"setup.cfg", "tox.ini", "pyproject.toml"}  # only their pytest sections are the harness
_INI_HEADER = re.compile(r"^\s*\[+\s*([^\]]*?)\s*\]+")


def _harness_kind(path: str) -> str | None:
    name = path.rsplit("/", 1)[-1]
    if name in _HARNESS_NAMES:
        return _HARNESS_NAMES[name]
    if name.endswith(".pth"):
        return "an interpreter start-up file (.pth)"
    if name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py")):
        return "a test module"
    return None


def _pytest_section(header: str) -> bool:
    return "pytest" in header.lower()


def _changes_pytest_section(section: Section, base: str | None) -> bool:
    """Does this file section of a diff change a pytest section of an ini/cfg/toml file (or a line that
    names pytest)? ``base`` is the file at base_commit ('' when new, None when it cannot be read: then any
    change counts)."""
    if base is None or not section.hunks:
        return True
    base_lines = base.splitlines()
    old_header = new_header = ""
    for line in section.lines:
        hunk = _HUNK.match(line)
        if hunk:
            start = int(hunk[1])
            old_header = next((m[1] for m in map(_INI_HEADER.match, reversed(base_lines[:max(start - 1, 0)])) if m),
                              "")
            new_header = old_header
            continue
        tag, text = line[:1], line[1:]
        header = _INI_HEADER.match(text)
        if tag in ("-", "+") and ("pytest" in text.lower()
                                  or _pytest_section(old_header if tag == "-" else new_header)):
            return True
        if header and tag in (" ", "-"):
            old_header = header[1]
        if header and tag in (" ", "+"):
            new_header = header[1]
    return False


def harness_changes(diff: str, base_text: Callable[[str], str | None]) -> dict[str, str]:
    """``{path: why}`` for each file of ``diff`` that is part of the test harness: conftest files, test
    modules, pytest configuration (pytest.ini/.toml anywhere; the pytest sections of setup.cfg, tox.ini and
    pyproject.toml), sitecustomize/usercustomize and ``.pth`` files. ``base_text(path)`` reads a file as it
    is at base_commit."""
    found: dict[str, str] = {}
    for section in sections(diff)[1]:
        for path in sorted(section.paths()):
            why = _harness_kind(path)
            if (why is None and path.rsplit("/", 1)[-1] in _SHARED_CONFIG
                    and _changes_pytest_section(section, base_text(path))):
                why = "its pytest configuration"
            if why:
                found[path] = why
    return found
