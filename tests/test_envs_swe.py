"""The swe environment: the shipped fixtures (real fix passes, no fix fails), JSONL loading, sessions."""

import json
import subprocess

import pytest
from seasoned.envs import Action, EnvError, get_env
from seasoned.envs.swe import SWEEnv, load_jsonl
from seasoned.envs.swe.env import FIXTURES


@pytest.fixture(scope="module")
def env():
    return SWEEnv()


def test_fixtures_load_with_swe_bench_fields(env):
    assert len(env.instances) >= 3
    for instance in env.instances:
        assert instance.fail_to_pass and instance.pass_to_pass and instance.patch and instance.test_patch
        task = env.get_task(instance.instance_id)
        assert instance.patch not in task.prompt and "+++" not in task.prompt  # the fix is never shown
        assert instance.problem_statement.strip()[:40] in task.prompt


@pytest.mark.parametrize("index", range(3))
async def test_fixture_reference_fix_passes_and_no_fix_fails(env, index):
    task = env.tasks()[index]
    instance = env.instance(task.id)
    good = await env.verify(task, instance.patch)
    assert good.passed and good.reward == 1.0, good.details
    bad = await env.verify(task, "")
    assert not bad.passed
    assert bad.details["FAIL_TO_PASS"]["passed"] == 0
    assert bad.details["PASS_TO_PASS"]["passed"] == len(instance.pass_to_pass)  # the bug is real, not a broken repo


async def test_patch_that_edits_the_tests_does_not_count(env):
    task = env.get_task("seasoned-fixtures__intervals-1")
    instance = env.instance(task.id)
    cheat = instance.test_patch.replace("assert merge([(1, 10), (2, 3)]) == [(1, 10)]", "assert True")
    verdict = await env.verify(task, cheat)
    assert not verdict.passed


async def test_unappliable_patch_is_a_failed_verdict(env):
    task = env.tasks()[0]
    verdict = await env.verify(task, "diff --git a/nope.py b/nope.py\n--- a/nope.py\n+++ b/nope.py\n@@ -1 +1 @@\n-x\n+y\n")
    assert not verdict.passed and "does not apply" in verdict.details["reason"]


async def test_session_tools_edit_and_verify(env):
    task = env.get_task("seasoned-fixtures__lrucache-1")
    session = await env.open(task)
    try:
        assert "lrucache/cache.py" in session.observation().text
        viewed = await session.step(Action("view", {"path": "lrucache/cache.py", "start": 25, "end": 35}))
        assert "self.hits += 1" in viewed.text
        refused = await session.step(Action("view", {"path": "../../etc/passwd"}))
        assert "outside the workspace" in refused.text
        await session.step(Action("edit", {"path": "lrucache/cache.py", "old": "        self.hits += 1\n",
                                           "new": "        self.hits += 1\n        self._data.move_to_end(key)\n"}))
        ran = await session.step(Action("bash", {"command": "python -m pytest -q -p no:cacheprovider tests"}))
        assert "passed" in ran.text
        done = await session.step(Action("submit", {}))
        assert done.done
        assert "move_to_end" in session.answer()
        assert (await session.verify()).passed
    finally:
        session.close()


def _write_jsonl(path, records):
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def _fixture_record(**changes):
    record = json.loads(FIXTURES.read_text().splitlines()[0])
    record["repo"] = str(FIXTURES.parent / record["repo"])
    record.update(changes)
    return record


def _git_repo(source, tmp_path):
    """A git repository of the tinysemver fixture at ``source``, its bundle, and the commit id."""
    subprocess.run(["cp", "-r", str(FIXTURES.parent / "tinysemver"), str(source)], check=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=source, check=True)
    subprocess.run(["git", "add", "-A"], cwd=source, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=source, check=True)
    base = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True,
                          check=True).stdout.strip()
    subprocess.run(["git", "bundle", "create", str(tmp_path / "repo.bundle"), "--all"], cwd=source,
                   check=True, capture_output=True)
    return base


async def test_jsonl_with_git_bundle_repo_and_custom_test_cmd(tmp_path):
    base = _git_repo(tmp_path / "src", tmp_path)
    record = _fixture_record(repo="repo.bundle", base_commit=base, instance_id="bundle-1",
                             test_cmd="{python} -m pytest -rA -p no:cacheprovider tests/test_version.py {tests}")
    _write_jsonl(tmp_path / "instances.jsonl", [record])
    env = get_env("swe", path=str(tmp_path / "instances.jsonl"))
    task = env.get_task("bundle-1")
    assert (await env.verify(task, record["patch"])).passed  # the file and its ids: tests run twice, fine
    assert not (await env.verify(task, "")).passed


def test_swe_bench_records_as_published_with_owner_name_repos(tmp_path, monkeypatch):
    repos = tmp_path / "repos"
    repos.mkdir()
    base = _git_repo(repos / "acme__tinysemver", tmp_path)
    (repos / "other__lib.bundle").write_bytes((tmp_path / "repo.bundle").read_bytes())
    published = _fixture_record(repo="acme/tinysemver", base_commit=base, version="0.1", created_at="2024-01-01",
                                environment_setup_commit=base, hints_text="", FAIL_TO_PASS="[\"a\"]",
                                PASS_TO_PASS="[]", some_future_field={"x": 1})
    bundled = dict(published, repo="other/lib", instance_id="other-1")
    (tmp_path / "data").mkdir()
    _write_jsonl(tmp_path / "data" / "swe.jsonl", [published, bundled])
    first, second = load_jsonl(tmp_path / "data" / "swe.jsonl", repos=repos)
    assert first.repo == (repos / "acme__tinysemver").resolve() and first.fail_to_pass == ["a"]
    assert second.repo == (repos / "other__lib.bundle").resolve() and first.pass_to_pass == []
    assert SWEEnv(tmp_path / "data" / "swe.jsonl", repos=repos).get_task("other-1").metadata["repo"] == "other/lib"
    with pytest.raises(EnvError, match=r"acme/tinysemver.*acme__tinysemver\.bundle.*SEASONED_SWE_REPOS"):
        load_jsonl(tmp_path / "data" / "swe.jsonl")
    monkeypatch.setenv("SEASONED_SWE_REPOS", str(repos))
    assert load_jsonl(tmp_path / "data" / "swe.jsonl")[0].repo == first.repo
    with pytest.raises(EnvError, match="repositories directory"):
        load_jsonl(tmp_path / "data" / "swe.jsonl", repos=tmp_path / "nope")


async def test_unittest_style_runner_is_read_from_its_output(tmp_path):
    repo = tmp_path / "uni"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "__init__.py").write_text("def double(x):\n    return x + x\n")
    (repo / "pkg" / "tests.py").write_text(
        "import unittest\nfrom pkg import double\n\nclass TestDouble(unittest.TestCase):\n"
        "    def test_two(self):\n        self.assertEqual(double(2), 4)\n\n"
        "    def test_three(self):\n        \"\"\"A docstring.\"\"\"\n        self.assertEqual(double(3), 6)\n")
    notes = "--- /dev/null\n+++ b/NOTES.txt\n@@ -0,0 +1 @@\n+x\n"
    record = {"instance_id": "uni-1", "repo": str(repo), "problem_statement": "x", "test_patch": notes,
              "FAIL_TO_PASS": ["test_two (pkg.tests.TestDouble)"],
              "PASS_TO_PASS": ["test_three (pkg.tests.TestDouble.test_three)"],
              "test_cmd": "python -m unittest -v pkg.tests"}
    env = SWEEnv(_write_jsonl(tmp_path / "u.jsonl", [record]))
    verdict = await env.verify(env.tasks()[0], "")
    assert verdict.passed, verdict.details
    broken = ("--- a/pkg/__init__.py\n+++ b/pkg/__init__.py\n@@ -1,2 +1,2 @@\n def double(x):\n"
              "-    return x + x\n+    return x * x\n")
    verdict = await env.verify(env.tasks()[0], broken)
    assert verdict.details["FAIL_TO_PASS"]["failing"] == [] and verdict.details["PASS_TO_PASS"]["failing"] == [
        "test_three (pkg.tests.TestDouble.test_three)"]


def test_bad_jsonl_errors_name_the_problem(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("{not json\n")
    with pytest.raises(EnvError, match=r"bad.jsonl:1: not valid JSON"):
        load_jsonl(path)
    _write_jsonl(path, [{"instance_id": "x"}])
    with pytest.raises(EnvError, match="missing field"):
        load_jsonl(path)
    _write_jsonl(path, [_fixture_record(repo=str(tmp_path / "no-such-repo"))])
    with pytest.raises(EnvError, match="no-such-repo.*not found"):
        load_jsonl(path)
    _write_jsonl(path, [_fixture_record(FAIL_TO_PASS="not a list")])
    with pytest.raises(EnvError, match="FAIL_TO_PASS"):
        load_jsonl(path)
    with pytest.raises(EnvError, match="does not exist"):
        load_jsonl(tmp_path / "missing.jsonl")
    with pytest.raises(EnvError, match="has no task"):
        SWEEnv().get_task("nope")


async def test_unknown_base_commit_is_a_clear_error(tmp_path):
    _write_jsonl(tmp_path / "i.jsonl", [_fixture_record(base_commit="deadbeef" * 5)])
    env = SWEEnv(tmp_path / "i.jsonl", allow_paths=str(FIXTURES.parent))  # the repo is not beside the file
    with pytest.raises(EnvError, match="base_commit .* not found"):
        await env.open(env.tasks()[0])
