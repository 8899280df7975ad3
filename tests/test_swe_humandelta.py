"""The generated ``humandelta`` fixture (667 tests, ids with spaces, quotes, brackets and unicode, one
real bug, history after the base commit) judged the way a SWE-bench dataset is: repo as owner/name in a
repositories directory, its own install, one test run read from a JUnit report."""

import json
import os
import subprocess
import sys

import pytest
from seasoned.envs import Action
from seasoned.envs.swe import SWEEnv, fixture_gen, testing
from seasoned.envs.swe.check import check_file


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("humandelta")
    jsonl = fixture_gen.build(root)
    return jsonl, root / "repos", json.loads(jsonl.read_text())


@pytest.fixture(scope="module")
def env(built):
    jsonl, repos, _ = built
    return SWEEnv(jsonl, repos=repos)


def _git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def _importable_here(module):
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, check=False).returncode == 0


def _checkout(record, repos, dest, *patches):
    subprocess.run(["git", "clone", "-q", str(repos / "seasoned-fixtures__humandelta"), str(dest)], check=True)
    _git(dest, "checkout", "-q", record["base_commit"])
    for patch in patches:
        subprocess.run(["git", "apply", "-"], cwd=dest, input=patch, text=True, check=True)
    return dest


def test_dataset_ids_are_what_pytest_collects(built, tmp_path):
    _, repos, record = built
    tree = _checkout(record, repos, tmp_path / "t", record["test_patch"])
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                          cwd=tree, capture_output=True, text=True, check=False)
    collected = [line for line in done.stdout.splitlines() if "::" in line]
    f2p, p2p = json.loads(record["FAIL_TO_PASS"]), json.loads(record["PASS_TO_PASS"])
    assert sorted(collected) == sorted(f2p + p2p) and len(p2p) >= 600
    assert any(" " in t and "[" in t for t in p2p) and any("\\x" in t for t in p2p) and any('"' in t for t in p2p)


async def test_a_patch_breaking_one_pass_to_pass_test_is_caught(env, built, tmp_path):
    _, repos, record = built
    tree = _checkout(record, repos, tmp_path / "t", record["patch"])
    units = tree / "humandelta" / "units.py"
    units.write_text(units.read_text().replace('SIZES["\\u00b5s"] = 1', 'SIZES["\\u00b5s"] = 2'))
    fmt = tree / "humandelta" / "format.py"
    fmt.write_text(fmt.read_text().replace('        return "0 microseconds"\n',
                                           '        return "0 microseconds"\n    if microseconds == 1001 and precision is None:\n'
                                           '        return "1001 microseconds"\n'))
    breaking = _git(tree, "diff")
    assert breaking.count("diff --git") == 2
    verdict = await env.verify(env.tasks()[0], breaking)
    assert not verdict.passed
    assert verdict.details["FAIL_TO_PASS"]["failing"] == []
    assert verdict.details["PASS_TO_PASS"]["failing"] == [
        "tests/test_format.py::test_format[1 millisecond and 1 microsecond]",
        "tests/test_parse.py::test_parse_short[5 \\xb5s]"]


async def test_output_cap_does_not_change_the_verdict(built):
    jsonl, repos, record = built
    tiny = SWEEnv(jsonl, repos=repos, max_output_chars=200)  # pytest -rA prints ~60,000 characters here
    verdict = await tiny.verify(tiny.tasks()[0], record["patch"])
    assert verdict.passed, verdict.details


async def test_ids_too_long_for_one_command_run_by_file_with_the_same_verdict(built, monkeypatch):
    jsonl, repos, record = built
    monkeypatch.setattr(testing, "MAX_COMMAND_BYTES", 10_000)  # ~45,000 bytes of ids
    env = SWEEnv(jsonl, repos=repos)
    instance = env.instances[0]
    assert testing.plan(None, instance.fail_to_pass + instance.pass_to_pass) == [
        ["tests/test_precision.py", "tests/test_format.py", "tests/test_parse.py"]]
    verdict = await env.verify(env.tasks()[0], record["patch"])
    assert verdict.passed, verdict.details
    verdict = await env.verify(env.tasks()[0], "")
    assert verdict.details["FAIL_TO_PASS"]["failing"] == instance.fail_to_pass


async def test_pip_install_lands_in_the_workspace_venv(env):
    instance = env.instances[0]
    assert instance.install.startswith("pip install")
    workspace = await env.prepare(instance)
    try:
        venv = workspace.attempt.venv
        site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
        assert any(p.name.startswith(("humandelta", "__editable__")) for p in site.iterdir())
        ran = await workspace.sandbox.arun(
            "cd /tmp && python -c 'import sys, humandelta; print(sys.prefix); print(humandelta.__file__)'"
            " && command -v pip && pip show humandelta")
        assert ran.ok, ran.render()
        prefix, module, pip_path = ran.stdout.splitlines()[:3]
        assert prefix == str(venv) and module.startswith(str(workspace.repo))
        assert pip_path == str(venv / "bin" / "pip") and f"Location: {site}" in ran.stdout
    finally:
        workspace.close()
    assert not workspace.attempt.root.exists()
    assert not _importable_here("humandelta")


async def test_the_future_is_not_reachable_in_an_attempt(env, built):
    _, repos, record = built
    source = repos / "seasoned-fixtures__humandelta"
    later = _git(source, "rev-list", "--all", f"^{record['base_commit']}").split()
    assert len(later) == 2  # the fix and a later branch
    session = await env.open(env.tasks()[0])
    try:
        log = await session.step(Action("bash", {"command": "git log --all --format=%H; git tag; git branch -a; "
                                                            "git reflog; git remote"}))
        shown = log.text.split()
        assert record["base_commit"] in shown and not set(later) & set(shown)
        for commit in later:
            probe = await session.step(Action("bash", {"command": f"git cat-file -e {commit}"}))
            assert not probe.text.startswith("exit code 0"), probe.text
        objects = await session.step(Action("bash", {"command": "git count-objects -v; ls .git; ls .git/refs -R"}))
        assert "FETCH_HEAD" not in objects.text and "ORIG_HEAD" not in objects.text
    finally:
        session.close()


def test_gold_check_gold_resolves_and_empty_does_not(built):
    jsonl, repos, record = built
    rows = check_file(jsonl, repos=repos)
    assert [r["valid"] for r in rows] == [True]
    gold, empty = rows[0]["gold"], rows[0]["empty"]
    assert gold["resolved"] and gold["failing"] == [] and gold["PASS_TO_PASS"] == "659/659"
    assert not empty["resolved"] and empty["failing"] == json.loads(record["FAIL_TO_PASS"])  # no P2P failing
    assert gold["seconds"] > 0 and "install" in gold["phases"] and "tests" in gold["phases"]


def test_gold_check_cli_exit_codes(built, tmp_path):
    _, repos, record = built
    env = {**os.environ, "SEASONED_SWE_REPOS": str(repos)}
    cli = [sys.executable, "-m", "seasoned.cli", "envs", "check", "swe"]
    shipped = subprocess.run(cli + [str(SWEEnv().path), "--instance", "seasoned-fixtures__tinysemver-1", "--json"],
                             capture_output=True, text=True, env=env, check=False)
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
    assert json.loads(shipped.stdout)["valid"] is True
    broken = dict(record, instance_id="broken-1", patch=record["test_patch"])  # "gold" that fixes nothing
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(broken) + "\n")
    done = subprocess.run(cli + [str(bad)], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "INVALID" in done.stdout and "broken-1" in done.stdout and "2 hours" in done.stdout
    missing = subprocess.run(cli + [str(bad), "--instance", "nope"], capture_output=True, text=True, env=env, check=False)
    assert missing.returncode == 2 and "nope" in missing.stderr
