"""Running an instance's tests in the sandbox and reading per-test outcomes.

The default command is pytest (``python -m pytest -rA``, whose summary lines give one status per
test id); an instance's ``test_cmd`` replaces it (``{tests}`` marks where the ids go, else they are
appended). When the output names no test status at all (another runner), each test is run on its own
and judged by its exit code."""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass, field

from seasoned.tools.sandbox import ExecResult, Sandbox

DEFAULT_CMD = "{python} -m pytest -rA -q -p no:cacheprovider --no-header --tb=short {tests}"
_STATUS = re.compile(r"^(PASSED|FAILED|ERROR|XPASS|XFAIL|SKIPPED)\s+(\S+(?:\[.*?\])?)(?:\s+-\s.*)?$", re.M)
_PYTEST_LINE = re.compile(r"^(\S+?::\S+?(?:\[.*?\])?)\s+(PASSED|FAILED|ERROR|XPASS|XFAIL|SKIPPED)\b", re.M)
# unittest / django style: "test_name (module.Class) ... ok"
_UNITTEST = re.compile(r"^(\w+ \([\w.]+\))(?: \.\.\.|\n.*?\.\.\.)\s*(ok|FAIL|ERROR|skipped.*|expected failure)$", re.M)
PASSING = {"PASSED", "XPASS", "XFAIL", "ok", "expected failure"}


@dataclass
class TestReport:
    statuses: dict[str, str] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)

    def passed(self, test_id: str) -> bool:
        return self.statuses.get(test_id) in PASSING


def command_for(test_cmd: str | None, tests: list[str]) -> str:
    template = test_cmd or DEFAULT_CMD
    ids = " ".join(shlex.quote(t) for t in tests)
    template = template.replace("{python}", shlex.quote(sys.executable))
    return template.replace("{tests}", ids) if "{tests}" in template else f"{template} {ids}".strip()


def parse_statuses(output: str) -> dict[str, str]:
    """Per-test statuses found in a test runner's output (pytest -rA / -v, unittest -v)."""
    statuses: dict[str, str] = {}
    for status, test_id in _STATUS.findall(output):
        statuses[test_id] = status
    for test_id, status in _PYTEST_LINE.findall(output):
        statuses.setdefault(test_id, status)
    for test_id, status in _UNITTEST.findall(output):
        statuses[test_id] = "SKIPPED" if status.startswith("skipped") else status
    return statuses


def _match(test_id: str, statuses: dict[str, str]) -> str | None:
    if test_id in statuses:
        return statuses[test_id]
    for seen, status in statuses.items():  # runners may print ids relative to another root
        if seen.endswith(test_id) or test_id.endswith(seen):
            return status
    return None


async def run_tests(sandbox: Sandbox, tests: list[str], test_cmd: str | None, timeout: float) -> TestReport:
    """Statuses of ``tests`` (missing ones count as failed)."""
    report = TestReport()
    if not tests:
        return report
    result: ExecResult = await sandbox.arun(command_for(test_cmd, tests), timeout=timeout)
    report.outputs.append(result.render())
    found = parse_statuses(result.stdout + "\n" + result.stderr)
    if found:
        for test in tests:
            report.statuses[test] = _match(test, found) or "MISSING"
        return report
    if len(tests) == 1:
        report.statuses[tests[0]] = "PASSED" if result.ok else "FAILED"
        return report
    for test in tests:  # unknown runner: one run per test, judged by exit code
        single = await sandbox.arun(command_for(test_cmd, [test]), timeout=timeout)
        report.statuses[test] = "PASSED" if single.ok else "FAILED"
    return report
