"""Issue 22 row 3: the SWE verdict must not depend on files a candidate controls outside the code under
test. A diff that only adds a ``conftest.py`` hook marking every test passed resolved a shipped fixture
and a custom instance; so did pytest configuration pointing at a plugin module of the candidate's.
The judge now leaves out the candidate's changes to test modules, conftest files, pytest configuration
and interpreter start-up files, and says so in the verdict. conftest files that exist at base_commit
still work (real projects have them)."""

import json
import textwrap

import pytest
from seasoned.envs.swe import SWEEnv, diffs

FORGE_HOOK = textwrap.dedent("""\
    import pytest


    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(item, call):
        outcome = yield
        report = outcome.get_result()
        report.outcome = "passed"
        report.longrepr = None
""")


def new_file(path: str, text: str) -> str:
    lines = text.splitlines()
    body = "".join(f"+{line}\n" for line in lines)
    return f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{len(lines)} @@\n{body}"


# --- a shipped fixture ------------------------------------------------------------------------------------
async def test_a_conftest_hook_does_not_resolve_a_shipped_fixture():
    env = SWEEnv()
    task = env.get_task("seasoned-fixtures__tinysemver-1")
    verdict = await env.verify(task, new_file("conftest.py", FORGE_HOOK))
    assert not verdict.passed, verdict.details
    assert "conftest.py" in verdict.details["ignored_changes"]
    assert verdict.details["FAIL_TO_PASS"]["passed"] == 0


# --- a custom instance with a conftest.py and pytest configuration of its own at base_commit -------------
BASE_FILES = {
    "calc/__init__.py": "def add(a, b):\n    return a - b\n",
    "tests/__init__.py": "",
    "tests/conftest.py": "import pytest\n\n\n@pytest.fixture\ndef two():\n    return 2\n",
    "tests/test_calc.py": "from calc import add\n\n\ndef test_zero(two):\n    assert add(two, 0) == 2\n",
    "tests/test_other.py": "from calc import add\n\n\ndef test_other():\n    assert add(1, 0) == 1\n",
    "pyproject.toml": '[project]\nname = "calc"\nversion = "0.1"\n\n[tool.pytest.ini_options]\n'
                      'markers = ["slow: slow tests"]\n\n[tool.black]\nline-length = 100\n',
}
TEST_PATCH = ("--- a/tests/test_calc.py\n+++ b/tests/test_calc.py\n@@ -3,3 +3,7 @@ from calc import add\n \n"
              " def test_zero(two):\n     assert add(two, 0) == 2\n+\n+\n+def test_add(two):\n+    assert add(two, 3) == 5\n")
GOLD = "--- a/calc/__init__.py\n+++ b/calc/__init__.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n"
PLUGIN = new_file("forge_plugin.py", FORGE_HOOK)  # a module of the candidate's: code, allowed by itself

ATTACKS = {
    "root conftest.py": (new_file("conftest.py", FORGE_HOOK), "conftest.py"),
    "changed conftest.py of the base": (
        "--- a/tests/conftest.py\n+++ b/tests/conftest.py\n@@ -1,1 +1,2 @@\n import pytest\n+from forge_plugin import *\n"
        + PLUGIN, "tests/conftest.py"),
    "pytest.ini loading a plugin": (new_file("pytest.ini", "[pytest]\naddopts = -p forge_plugin\n") + PLUGIN, "pytest.ini"),
    "pyproject pytest section": (
        "--- a/pyproject.toml\n+++ b/pyproject.toml\n@@ -5,2 +5,3 @@ version = \"0.1\"\n [tool.pytest.ini_options]\n"
        " markers = [\"slow: slow tests\"]\n+addopts = \"-p forge_plugin\"\n" + PLUGIN, "pyproject.toml"),
    "tests/pytest.ini nearer the tests": (new_file("tests/pytest.ini", "[pytest]\naddopts = -p forge_plugin\n")
                                          + PLUGIN, "tests/pytest.ini"),
    "pytest_plugins in a test module": (
        "--- a/tests/test_other.py\n+++ b/tests/test_other.py\n@@ -1,1 +1,2 @@\n from calc import add\n"
        "+pytest_plugins = [\"forge_plugin\"]\n" + PLUGIN, "tests/test_other.py"),
}


@pytest.fixture(scope="module")
def custom(tmp_path_factory):
    root = tmp_path_factory.mktemp("judge")
    repo = root / "calc"
    for name, text in BASE_FILES.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    record = {"instance_id": "calc-1", "repo": "calc", "problem_statement": "add subtracts",
              "test_patch": TEST_PATCH, "patch": GOLD, "FAIL_TO_PASS": ["tests/test_calc.py::test_add"],
              "PASS_TO_PASS": ["tests/test_calc.py::test_zero", "tests/test_other.py::test_other"]}
    (root / "calc.jsonl").write_text(json.dumps(record) + "\n")
    return SWEEnv(root / "calc.jsonl")


async def test_gold_resolves_with_the_base_conftest_and_config(custom):
    verdict = await custom.verify(custom.get_task("calc-1"), GOLD)
    assert verdict.passed, verdict.details
    assert verdict.details["ignored_changes"] == {}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_forged_harness_does_not_resolve(custom, attack):
    patch, path = ATTACKS[attack]
    verdict = await custom.verify(custom.get_task("calc-1"), patch)
    assert not verdict.passed, verdict.details
    assert path in verdict.details["ignored_changes"], verdict.details
    assert verdict.details["FAIL_TO_PASS"]["failing"] == ["tests/test_calc.py::test_add"]


async def test_a_fix_with_a_forgery_is_judged_on_the_fix_alone(custom):
    patch = GOLD + new_file("conftest.py", FORGE_HOOK)
    verdict = await custom.verify(custom.get_task("calc-1"), patch)
    assert verdict.passed and list(verdict.details["ignored_changes"]) == ["conftest.py"]


# --- which changes count as harness ----------------------------------------------------------------------
def test_harness_changes_name_every_kind_and_leave_code_alone():
    base = {"setup.cfg": "[metadata]\nname = x\n\n[tool:pytest]\ntestpaths = tests\n",
            "tox.ini": "[tox]\nenvlist = py3\n"}
    patch = "".join([
        new_file("pkg/sitecustomize.py", "import os\n"), new_file("usercustomize.py", "import os\n"),
        new_file("pkg/zz.pth", "import os\n"), new_file("src/pkg/test_util.py", "x = 1\n"),
        new_file("pkg/core.py", "x = 1\n"), new_file("pytest.toml", "[pytest]\n"),
        "--- a/setup.cfg\n+++ b/setup.cfg\n@@ -4,2 +4,3 @@\n [tool:pytest]\n testpaths = tests\n+addopts = -p x\n",
        "--- a/tox.ini\n+++ b/tox.ini\n@@ -1,2 +1,2 @@\n [tox]\n-envlist = py3\n+envlist = py3,py4\n",
    ])
    found = diffs.harness_changes(patch, base.get)
    assert set(found) == {"pkg/sitecustomize.py", "usercustomize.py", "pkg/zz.pth", "src/pkg/test_util.py",
                          "pytest.toml", "setup.cfg"}
    assert "pkg/core.py" not in found and "tox.ini" not in found  # code, and tox.ini's tox section
