"""Per-test outcomes from what a test run leaves behind: a pytest JUnit XML report (the judge's source
of truth), else the full output log read by pytest ``-rA``/``-v`` and unittest/Django ``-v`` readers.

Dataset ids are pytest node ids (``tests/test_x.py::TestC::test_a[1 ms]``) or unittest names
(``test_a (pkg.tests.TestC)``). A JUnit ``<testcase classname= name=>`` is mapped back to a node id the
way pytest builds it (``mangle_test_address``), so ids with spaces, brackets, quotes and unicode
round-trip; ids relative to another root directory match by a unique dotted suffix."""

from __future__ import annotations

import os
import re
import stat
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

PASSING = {"PASSED", "XPASS", "XFAIL", "ok", "expected failure"}
MAX_REPORT_BYTES = 64 * 1024 * 1024
MAX_LINE = 4000
_STATUS = re.compile(r"^(PASSED|FAILED|ERROR|XPASS|XFAIL|SKIPPED)\s+(\S+(?:\[.*?\])?)(?:\s+-\s.*)?$", re.MULTILINE)
_SUBFAILED = re.compile(r"^SUBFAILED(?:\(.*?\))?\s+(\S+(?:\[.*?\])?)(?:\s+-\s.*)?$", re.MULTILINE)
_PYTEST_LINE = re.compile(r"^(\S+?::\S+?(?:\[.*?\])?)\s+(PASSED|FAILED|ERROR|XPASS|XFAIL|SKIPPED)\b", re.MULTILINE)
# unittest / django style: "test_name (module.Class) ... ok" (a docstring line may sit in between)
_UNITTEST = re.compile(r"^(\w+ \([\w.]+\))(?: \.\.\.|\n[^\n]*?\.\.\.)[ \t]*(ok|FAIL|ERROR|skipped.*|expected failure"
                       r"|unexpected success)$", re.MULTILINE)
_UNITTEST_ID = re.compile(r"^(\w+) \(([\w.]+)\)$")
_RANK = {"PASSED": 0, "XPASS": 0, "XFAIL": 0, "SKIPPED": 1, "FAILED": 2, "ERROR": 3}


@dataclass
class TestReport:
    """Statuses of the requested tests (``MISSING`` when a run said nothing about one)."""

    statuses: dict[str, str] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def passed(self, test_id: str) -> bool:
        return self.statuses.get(test_id) in PASSING


def read_limited(path: Path, limit: int = MAX_REPORT_BYTES) -> bytes | None:
    """A regular file's bytes (not following a symlink, at most ``limit``), or None.

    Report files sit in a tree that tested code can write: a symlink there must not make the judge
    read a host file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(limit)
    finally:
        os.close(fd)


# --- JUnit XML -----------------------------------------------------------------------------------------
def junit_key(test_id: str) -> tuple[str, str]:
    """``(classname, name)`` pytest writes for a node id (its ``mangle_test_address``)."""
    path, bracket, params = test_id.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    return ".".join(names[:-1]), names[-1]


def _outcome(case: ET.Element) -> str:
    tags = {child.tag for child in case}
    if "error" in tags:
        return "ERROR"
    if "failure" in tags:
        return "FAILED"
    if "skipped" in tags:
        skipped = case.find("skipped")
        return "XFAIL" if skipped is not None and skipped.get("type") == "pytest.xfail" else "SKIPPED"
    return "PASSED"


def parse_junit(data: bytes) -> dict[tuple[str, str], str]:
    """``{(classname, name): status}`` of a JUnit XML document (several entries for one test: the worst)."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise ValueError("JUnit report with a DOCTYPE/ENTITY declaration (not written by pytest)")
    root = ET.fromstring(data)
    found: dict[tuple[str, str], str] = {}
    for case in root.iter("testcase"):
        key = (case.get("classname") or "", case.get("name") or "")
        status = _outcome(case)
        if key not in found or _RANK[status] > _RANK[found[key]]:
            found[key] = status
    return found


def _suffix_match(expected: str, seen: str) -> bool:
    return bool(expected) and bool(seen) and (expected == seen or expected.endswith("." + seen)
                                              or seen.endswith("." + expected))


def match_junit(tests: list[str], found: dict[tuple[str, str], str]) -> dict[str, str]:
    """Status of each requested id found in a JUnit report: exact key, else a unique dotted-suffix match."""
    by_name: dict[str, list[tuple[str, str]]] = {}
    for classname, name in found:
        by_name.setdefault(name, []).append((classname, name))
    statuses = {}
    for test in tests:
        key = junit_key(test)
        if key in found:
            statuses[test] = found[key]
            continue
        near = [k for k in by_name.get(key[1], []) if _suffix_match(key[0], k[0])]
        if len(near) == 1:
            statuses[test] = found[near[0]]
    return statuses


# --- text output (fallback for other runners) -----------------------------------------------------------
def parse_statuses(output: str) -> dict[str, str]:
    """Per-test statuses found in a test runner's output (pytest -rA / -v, unittest -v, Django)."""
    statuses: dict[str, str] = {}
    output = "\n".join(line for line in output.splitlines() if len(line) <= MAX_LINE)  # bounded regex work
    for status, test_id in _STATUS.findall(output):
        statuses[test_id] = status
    for test_id in _SUBFAILED.findall(output):  # pytest 9 prints PASSED for a test whose subtests failed
        statuses[test_id] = "FAILED"
    for test_id, status in _PYTEST_LINE.findall(output):
        statuses.setdefault(test_id, status)
    for test_id, status in _UNITTEST.findall(output):
        statuses[test_id] = {"FAIL": "FAILED", "unexpected success": "FAILED"}.get(
            status, "SKIPPED" if status.startswith("skipped") else status)
    return statuses


def unittest_name(test_id: str) -> str | None:
    """``pkg.tests.TestC.test_a`` for a unittest display id, old style ``test_a (pkg.tests.TestC)`` or
    Python 3.11's ``test_a (pkg.tests.TestC.test_a)``; None for other ids."""
    match = _UNITTEST_ID.match(test_id)
    if not match:
        return None
    name, path = match.groups()
    return path if path.endswith("." + name) else f"{path}.{name}"


def match_text(tests: list[str], statuses: dict[str, str]) -> dict[str, str]:
    """Status of each requested id: exact, else the same unittest test printed in the other style, else
    an id printed relative to another root (``/``-suffix)."""
    by_name = {unittest_name(s): status for s, status in statuses.items() if unittest_name(s)}
    found = {}
    for test in tests:
        if test in statuses:
            found[test] = statuses[test]
            continue
        if unittest_name(test) in by_name:
            found[test] = by_name[unittest_name(test)]
            continue
        near = [s for s in statuses if s.endswith("/" + test) or test.endswith("/" + s)]
        if len(near) == 1:
            found[test] = statuses[near[0]]
    return found
