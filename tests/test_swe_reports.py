"""Reading per-test outcomes: JUnit XML mapped back to node ids (spaces, brackets, quotes, unicode),
text fallbacks for unittest/Django output, batching of long command lines, defensive file reads."""

import shlex
import subprocess
import sys

import pytest
from seasoned.envs.swe import reports, testing

IDS = [
    "tests/test_units.py::test_units[val0-1 millisecond and 1 microsecond]",
    "tests/test_units.py::TestParse::test_quoted[it's \"5\" minutes]",
    "tests/test_units.py::TestParse::TestInner::test_nested[a[b]c]",
    "tests/test_units.py::test_unicode[5 \\xb5s]",
    "tests/test_units.py::test_plain",
    "tests/sub/test_more.py::test_skip",
    "tests/sub/test_more.py::test_xfail",
    "tests/sub/test_more.py::test_fails[x::y]",
]

TEST_FILE = '''
import pytest

@pytest.mark.parametrize("text", ["1 millisecond and 1 microsecond"], ids=["val0-1 millisecond and 1 microsecond"])
def test_units(text):
    assert text

class TestParse:
    @pytest.mark.parametrize("text", ['it\\'s "5" minutes'], ids=['it\\'s "5" minutes'])
    def test_quoted(self, text):
        assert text

    class TestInner:
        @pytest.mark.parametrize("x", ["a[b]c"], ids=["a[b]c"])
        def test_nested(self, x):
            assert x

@pytest.mark.parametrize("x", ["5 \\u00b5s"], ids=["5 \\u00b5s"])
def test_unicode(x):
    assert x

def test_plain():
    pass
'''

MORE_FILE = '''
import pytest

def test_skip():
    pytest.skip("no")

@pytest.mark.xfail
def test_xfail():
    assert False

@pytest.mark.parametrize("x", ["x::y"], ids=["x::y"])
def test_fails(x):
    assert x == "nope"
'''


@pytest.fixture(scope="module")
def junit_report(tmp_path_factory):
    """A JUnit report written by the real pytest for tests whose ids are awkward."""
    root = tmp_path_factory.mktemp("junit")
    (root / "tests" / "sub").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    (root / "tests" / "test_units.py").write_text(TEST_FILE)
    (root / "tests" / "sub" / "test_more.py").write_text(MORE_FILE)
    out = root / "report.xml"
    cmd = f"{shlex.quote(sys.executable)} -m pytest -q -p no:cacheprovider --junitxml={out} -o junit_family=xunit1 "
    cmd += " ".join(shlex.quote(i) for i in IDS)
    done = subprocess.run(cmd, shell=True, cwd=root, capture_output=True, text=True, check=False)
    assert out.exists(), done.stdout + done.stderr
    return out.read_bytes()


def test_junit_ids_round_trip(junit_report):
    statuses = reports.match_junit(IDS, reports.parse_junit(junit_report))
    assert statuses == {IDS[0]: "PASSED", IDS[1]: "PASSED", IDS[2]: "PASSED", IDS[3]: "PASSED", IDS[4]: "PASSED",
                        IDS[5]: "SKIPPED", IDS[6]: "XFAIL", IDS[7]: "FAILED"}


def test_junit_ids_relative_to_another_root(junit_report):
    other_root = [i.removeprefix("tests/") for i in IDS]
    statuses = reports.match_junit(other_root, reports.parse_junit(junit_report))
    assert statuses[other_root[0]] == "PASSED" and statuses[other_root[7]] == "FAILED"
    assert reports.match_junit(["tests/test_units.py::test_nope"], reports.parse_junit(junit_report)) == {}


def test_junit_worst_outcome_wins_and_entities_are_refused():
    doc = (b'<testsuites><testsuite><testcase classname="t" name="a"/>'
           b'<testcase classname="t" name="a"><error message="teardown"/></testcase></testsuite></testsuites>')
    assert reports.parse_junit(doc) == {("t", "a"): "ERROR"}
    with pytest.raises(ValueError):
        reports.parse_junit(b'<!DOCTYPE x [<!ENTITY a "aaaa">]><testsuites/>')


def test_text_readers_for_pytest_and_unittest_output():
    output = "\n".join([
        "PASSED tests/test_x.py::test_a[1 hour and 2 minutes]",
        "FAILED tests/test_x.py::test_b[x] - assert [1] == [2]",
        "test_ok (pkg.tests.TestC) ... ok",
        "test_doc (pkg.tests.TestC.test_doc)",
        "A docstring line ... FAIL",
        "test_skip (pkg.tests.TestC) ... skipped 'no db'",
        "PASSED tests/test_x.py::Sub::test_c",
        "SUBFAILED(n=1) tests/test_x.py::Sub::test_c - AttributeError: x",
        "x" * 100_000,
    ])
    found = reports.parse_statuses(output)
    assert found["tests/test_x.py::test_a[1 hour and 2 minutes]"] == "PASSED"
    assert found["tests/test_x.py::test_b[x]"] == "FAILED"
    assert found["test_ok (pkg.tests.TestC)"] == "ok"
    assert found["test_doc (pkg.tests.TestC.test_doc)"] == "FAILED"
    assert found["test_skip (pkg.tests.TestC)"] == "SKIPPED"
    assert found["tests/test_x.py::Sub::test_c"] == "FAILED"
    assert reports.match_text(["test_x.py::test_b[x]"], {"tests/test_x.py::test_b[x]": "FAILED"}) == {
        "test_x.py::test_b[x]": "FAILED"}


def test_batches_split_only_past_the_command_line_limit():
    ids = [f"tests/test_x.py::test_{i}[some words {i}]" for i in range(3000)]
    groups = testing.batches(None, ids)
    assert [t for g in groups for t in g] == ids and len(groups) > 1
    assert all(len(testing.command_for(None, g).encode()) < testing.MAX_COMMAND_BYTES for g in groups)
    assert testing.batches(None, ids[:600]) == [ids[:600]]
    files = testing.plan(None, ids + ["tests/other.py::test_b"])
    assert files == [["tests/test_x.py", "tests/other.py"]]
    command = testing.command_for("python -m pytest -q {tests} -x", ["a b", "c'd"])
    assert command == "python -m pytest -q 'a b' 'c'\"'\"'d' -x"


def test_report_files_are_read_without_following_symlinks(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("host data")
    (tmp_path / "report.xml").symlink_to(secret)
    assert reports.read_limited(tmp_path / "report.xml") is None
    (tmp_path / "fifo").mkdir()
    assert reports.read_limited(tmp_path / "fifo") is None
    (tmp_path / "big.txt").write_bytes(b"x" * 1000)
    assert reports.read_limited(tmp_path / "big.txt", limit=10) == b"x" * 10
