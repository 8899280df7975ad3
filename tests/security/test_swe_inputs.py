"""Issue 22 rows 4-6: a SWE JSONL is input. Its ``repo`` cannot make the host copy a folder outside the
repositories directories into a workspace an agent reads (row 4); one instance's install cannot plant
files another instance's install reads through a shared pip cache (row 5); the workspace venv does not
show the product's own site-packages (row 6)."""

import json
import os
from pathlib import Path

import pytest
from seasoned.envs.swe import SWEEnv, load_jsonl
from seasoned.envs.swe.env import FIXTURES
from seasoned.errors import EnvError


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
