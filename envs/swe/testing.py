"""Running an instance's tests in the sandbox, in one run, and reading per-test outcomes from files.

The command is the instance's ``test_cmd`` (default: pytest) with the test ids where ``{tests}`` is
(else appended; unittest/Django display ids are never added: such a command names its tests itself) and ``{python}`` replaced by the workspace interpreter. Every FAIL_TO_PASS and
PASS_TO_PASS id goes into one run; when they would not fit in one command line (what the kernel
accepts for one argument), the run names the test files instead, split into batches only if even
those do not fit. pytest writes a JUnit XML report into the workspace
(``PYTEST_ADDOPTS``, so it works however the command starts pytest); the whole output goes to a log
file there too. The judge reads both files, never the capped output an agent sees."""

from __future__ import annotations

import shlex
import shutil
import sys
import uuid
from pathlib import Path

from seasoned.tools.files import make_dirs
from seasoned.tools.sandbox import Sandbox

from .reports import (
    TestReport,
    match_junit,
    match_text,
    parse_junit,
    parse_statuses,
    read_limited,
    unittest_name,
)

DEFAULT_CMD = "{python} -m pytest -rA -q -p no:cacheprovider --no-header --tb=short {tests}"
MAX_COMMAND_BYTES = 100_000  # one ``sh -c`` argument may hold 128 KiB (MAX_ARG_STRLEN)
OUTPUT_TAIL = 3000


def command_for(test_cmd: str | None, tests: list[str], python: str | None = None) -> str:
    """The shell command running ``tests`` (each id shell-quoted). unittest/Django display ids
    (``test_a (pkg.tests.TestC)``) are not arguments a runner accepts: the command names the tests."""
    template = test_cmd or DEFAULT_CMD
    ids = " ".join(shlex.quote(t) for t in tests if unittest_name(t) is None)
    template = template.replace("{python}", shlex.quote(python or sys.executable))
    return template.replace("{tests}", ids) if "{tests}" in template else f"{template} {ids}".strip()


def batches(test_cmd: str | None, tests: list[str], python: str | None = None,
            limit: int | None = None) -> list[list[str]]:
    """``tests`` split into as few runs as fit the command-line limit (one run almost always)."""
    limit = limit or MAX_COMMAND_BYTES
    base = len(command_for(test_cmd, [], python).encode()) + 600  # room for the report redirections
    groups: list[list[str]] = [[]]
    size = base
    for test in tests:
        cost = 0 if unittest_name(test) else len(shlex.quote(test).encode()) + 1
        if groups[-1] and size + cost > limit:
            groups.append([])
            size = base
        groups[-1].append(test)
        size += cost
    return [g for g in groups if g]


def plan(test_cmd: str | None, tests: list[str], python: str | None = None) -> list[list[str]]:
    """The command-line arguments of each run: the ids when they fit in one command; else the test
    files holding them (pytest matches thousands of node ids slowly, and a file list is short), in as
    few runs as fit. Outcomes are read per id from the reports either way."""
    groups = batches(test_cmd, tests, python)
    if len(groups) <= 1:
        return groups
    files = list(dict.fromkeys(t.split("::", 1)[0] for t in tests if "::" in t))
    others = [t for t in tests if "::" not in t]
    return batches(test_cmd, files + others, python)


def _script(command: str, junit: Path, log: Path, repo: Path) -> str:
    """The judge's own pytest options, whatever the command: its report file, no cache written into the
    tree, and no conftest.py above the repository (``/tmp`` is the sandbox's, the tested code can write it)."""
    addopts = (f"--junitxml={shlex.quote(str(junit))} -o junit_family=xunit1 -p no:cacheprovider "
               f"--confcutdir={shlex.quote(str(repo))}")
    return f"export PYTEST_ADDOPTS={shlex.quote(addopts)}\n( {command}\n) > {shlex.quote(str(log))} 2>&1"


async def run_tests(sandbox: Sandbox, tests: list[str], test_cmd: str | None, timeout: float, *,
                    reports: Path, python: str | None = None) -> TestReport:
    """Statuses of ``tests`` (``MISSING`` for an id no report mentions: it counts as failed).

    ``reports`` is a directory outside the tree under test that the sandbox may write (``rw_binds``):
    tested code cannot plant a symlink in its place before the run, and each report file is opened
    without following one."""
    report = TestReport()
    if not tests:
        return report
    reports = Path(reports) / uuid.uuid4().hex[:12]
    make_dirs(reports)  # owned like its parent: the sandbox's user writes the reports there
    found: dict[str, str] = {}
    try:
        for number, batch in enumerate(plan(test_cmd, tests, python)):
            junit, log = reports / f"junit-{number}.xml", reports / f"output-{number}.txt"
            result = await sandbox.arun(_script(command_for(test_cmd, batch, python), junit, log, sandbox.root), timeout=timeout)
            output = (read_limited(log) or b"").decode("utf-8", "replace")
            report.outputs.append(output[-OUTPUT_TAIL:])
            if result.timed_out:
                report.notes.append(f"the test run was stopped at the time limit ({timeout:.0f}s)")
            elif result.exit_code and result.stderr.strip():
                report.notes.append(result.stderr.strip()[-300:])
            data = read_limited(junit)
            if data:
                try:
                    cases = parse_junit(data)
                    found.update(match_junit([t for t in tests if t not in found], cases))
                    if not cases:
                        report.notes.append("the JUnit report lists no test: collection failed or an id was not "
                                            "found (see the output)")
                except (ValueError, SyntaxError) as exc:  # ParseError is a SyntaxError
                    report.notes.append(f"unreadable JUnit report: {exc}")
            missing = [t for t in tests if t not in found]
            if missing:
                found.update(match_text(missing, parse_statuses(output)))
            if len(tests) == 1 and tests[0] not in found:  # a lone test of an unknown runner: its exit code
                found[tests[0]] = "PASSED" if result.ok else "FAILED"
    finally:
        shutil.rmtree(reports, ignore_errors=True)
    report.statuses = {t: found.get(t, "MISSING") for t in tests}
    return report
