"""Issue 22 rows 4-6: a SWE JSONL is input. Its ``repo`` cannot make the host copy a folder outside the
repositories directories into a workspace an agent reads (row 4); one instance's install cannot plant
files another instance's install reads through a shared pip cache (row 5); the workspace venv does not
show the product's own site-packages (row 6)."""

import json
import os
import shlex
import shutil
import sys
from pathlib import Path

import pytest
from seasoned.envs import Action
from seasoned.envs.swe import SWEEnv, load_jsonl
from seasoned.envs.swe.env import FIXTURES
from seasoned.errors import EnvError
from seasoned.tools import bwrap


def _record(**changes) -> dict:
    record = json.loads(FIXTURES.read_text().splitlines()[0])
    record.update(changes)
    return record


def _jsonl(path: Path, *records: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """data/swe.jsonl beside repos/, and private folders outside both (one of them in a fake home)."""
    home = tmp_path / "home"
    (home / "proj").mkdir(parents=True)
    (home / "proj" / "secret.txt").write_text("HOME SECRET")
    monkeypatch.setenv("HOME", str(home))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("OUTSIDE SECRET")
    repos = tmp_path / "data" / "repos"
    repos.mkdir(parents=True)
    os.symlink(FIXTURES.parent / "tinysemver", repos / "acme__tinysemver")  # a link out of the repos dir
    monkeypatch.delenv("SEASONED_SWE_REPOS", raising=False)
    return tmp_path


@pytest.mark.parametrize("repo", ["../outside", "~/proj", "/", "repos/../../outside",
                                  "acme/tinysemver"])
def test_a_repo_outside_the_repositories_directories_is_refused(layout, repo):
    path = _jsonl(layout / "data" / "swe.jsonl", _record(repo=repo))
    with pytest.raises(EnvError, match="outside the repositories directories|not found"):
        load_jsonl(path, repos=layout / "data" / "repos")


def test_an_explicitly_allowed_directory_is_accepted(layout):
    path = _jsonl(layout / "data" / "swe.jsonl", _record(repo="acme/tinysemver"))
    [instance] = load_jsonl(path, repos=layout / "data" / "repos", allow_paths=str(FIXTURES.parent))
    assert instance.repo == (FIXTURES.parent / "tinysemver").resolve()
    env = SWEEnv(path, repos=layout / "data" / "repos", allow_paths=[str(FIXTURES.parent)])
    assert env.instance(instance.instance_id).repo == instance.repo
    with pytest.raises(EnvError, match="outside"):  # / and a home directory never count, even when given
        load_jsonl(_jsonl(layout / "data" / "b.jsonl", _record(repo=str(layout / "home" / "proj"))),
                   allow_paths=f"/{os.pathsep}{layout / 'home'}")


def test_paths_inside_the_jsonl_directory_still_work(layout):
    path = _jsonl(layout / "data" / "swe.jsonl", _record(repo=str(FIXTURES.parent / "tinysemver")))
    with pytest.raises(EnvError, match="outside"):
        load_jsonl(path)
    shipped = load_jsonl(FIXTURES)  # the fixtures' repos are beside their JSONL
    assert all(i.repo.is_relative_to(FIXTURES.parent) for i in shipped)


# --- row 5: pip caches ---------------------------------------------------------------------------------
PLANT = 'echo PLANTED > "$PIP_CACHE_DIR/planted.txt"'
LOOK = 'test ! -e "$PIP_CACHE_DIR/planted.txt" && ! (find "$PIP_CACHE_DIR/.." -name planted.txt | grep -q .)'


async def test_one_instance_install_cannot_plant_files_for_another(tmp_path):
    shutil.copytree(FIXTURES.parent / "tinysemver", tmp_path / "tinysemver")
    first = _record(repo="tinysemver", instance_id="a-1", install=PLANT)
    second = _record(repo="tinysemver", instance_id="b-1", install=LOOK)
    env = SWEEnv(_jsonl(tmp_path / "two.jsonl", first, second))
    planted = await env.prepare(env.instance("a-1"))
    planted.close()
    looked = await env.prepare(env.instance("b-1"))  # its install fails (EnvError) if it sees A's file
    looked.close()
    again = await env.prepare(env.instance("a-1"))  # a second attempt at A reuses A's cache
    try:
        assert (await again.sandbox.arun('echo "$PIP_CACHE_DIR"')).stdout.strip() == ""  # only the install sees it
    finally:
        again.close()


# --- row 6: what the workspace venv shows ---------------------------------------------------------------
async def test_the_workspace_venv_shows_neither_the_products_packages_nor_a_newer_copy_of_the_project(tmp_path):
    repos = tmp_path / "repos"
    shutil.copytree(FIXTURES.parent / "tinysemver", repos / "acme__more-itertools")
    record = _record(repo="acme/more-itertools", instance_id="mi-1")
    env = SWEEnv(_jsonl(tmp_path / "mi.jsonl", record), repos=repos)
    session = await env.open(env.get_task("mi-1"))
    try:
        if session.sandbox.isolation != "bwrap":
            pytest.skip("only bwrap hides the host's files")
        product = sys.prefix
        seen = [session.workspace.attempt.venv, *session.workspace.attempt.seeds, *bwrap.base_interpreter_paths()]
        checks = {
            "product venv": f"if test -e {shlex.quote(product)}; then echo VISIBLE; fi",
            "importable": "python -c 'import more_itertools' 2>/dev/null && echo IMPORTABLE; "
                          "python -c 'import setuptools' 2>/dev/null && echo SETUPTOOLS; true",
            "in the seed, venv or interpreter": f"find {' '.join(map(str, seen))} -name 'more_itertools*' 2>/dev/null",
            "base site-packages": " ; ".join(f"ls -A {shlex.quote(str(p))}" for p in bwrap.base_site_packages()),
        }
        for what, command in checks.items():
            result = await session.step(Action("bash", {"command": command}))
            assert result.text.strip() == "exit code 0", (what, result.text)
        tests = await session.step(Action("bash", {"command": "python -m pytest -q -p no:cacheprovider tests"}))
        assert "passed" in tests.text  # the seeded pytest still runs the tests
    finally:
        session.close()
