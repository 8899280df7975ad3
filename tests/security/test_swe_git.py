"""Git and patch attacks on the swe judge and sessions (issue 14): code a model wrote must never run on
the host through git (filters, fsmonitor, external diff, hooks), the judge rebuilds its tree from the
base commit plus the diff text only, and a diff cannot write into ``.git`` or out of the tree."""

import shlex
from pathlib import Path

import pytest
from seasoned.envs import Action
from seasoned.envs.swe import SWEEnv
from seasoned.tools import bwrap

TINY = "seasoned-fixtures__tinysemver-1"
FIX_OLD = 'return cls(match["major"], match["minor"], match["patch"], pre, build)'
FIX_NEW = 'return cls(int(match["major"]), int(match["minor"]), int(match["patch"]), pre, build)'
needs_bwrap = pytest.mark.skipif(not bwrap.status().usable, reason=f"bwrap unusable here: {bwrap.status().reason}")


@pytest.fixture(scope="module")
def env():
    return SWEEnv()


def _markers(tmp_path: Path) -> dict[str, Path]:
    return {name: tmp_path / f"pwned-{name}" for name in ("clean", "smudge", "fsmonitor", "diff", "hook", "textconv")}


def _nothing_ran(markers: dict[str, Path]) -> None:
    ran = [name for name, path in markers.items() if path.exists()]
    assert not ran, f"git ran attacker commands on the host: {ran}"


async def test_diff_writing_git_config_and_gitattributes_is_refused(env, tmp_path):
    markers = _markers(tmp_path)
    config = (f'[filter "x"]\n\tclean = touch {markers["clean"]}; cat\n\tsmudge = touch {markers["smudge"]}; cat\n'
              f'[core]\n\tfsmonitor = touch {markers["fsmonitor"]}\n')
    added = "".join(f"+{line}\n" for line in config.splitlines())
    attack = ("diff --git a/.gitattributes b/.gitattributes\nnew file mode 100644\n--- /dev/null\n"
              "+++ b/.gitattributes\n@@ -0,0 +1 @@\n+* filter=x\n"
              f"--- a/.git/config\n+++ b/.git/config\n@@ -0,0 +1,{len(config.splitlines())} @@\n{added}")
    instance = env.instance(TINY)
    for patch in (attack, instance.patch + attack, attack.split("--- a/.git/config")[0]):
        verdict = await env.verify(env.get_task(TINY), patch)
        assert not verdict.passed and "refused" in verdict.details["reason"], verdict.details
    _nothing_ran(markers)


@needs_bwrap
async def test_patch_fallback_cannot_write_into_git_or_outside_the_tree(env, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    workspace = await env.prepare(env.instance(TINY))  # the judge's tree: .git is read-only in the sandbox
    try:
        config = workspace.repo / ".git" / "config"
        before = config.read_text()
        into_git = "--- a/.git/config\n+++ b/.git/config\n@@ -1,0 +1,2 @@\n+[filter \"x\"]\n+\tclean = touch /x\n"
        ok, _ = await env.apply(workspace, into_git)  # bypasses the diff check on purpose
        assert not ok and config.read_text() == before
        escape = ("diff --git a/escape b/escape\nnew file mode 120000\n--- /dev/null\n+++ b/escape\n"
                  f"@@ -0,0 +1 @@\n+{outside}\n\\ No newline at end of file\n"
                  "diff --git a/escape/pwned.txt b/escape/pwned.txt\nnew file mode 100644\n--- /dev/null\n"
                  "+++ b/escape/pwned.txt\n@@ -0,0 +1 @@\n+pwned\n")
        await env.apply(workspace, escape)
        dotdot = f"--- a/../../{outside.name}/dotdot.txt\n+++ b/../../{outside.name}/dotdot.txt\n@@ -0,0 +1 @@\n+x\n"
        await env.apply(workspace, dotdot)
        assert list(outside.iterdir()) == []
        assert not (workspace.attempt.root / "dotdot.txt").exists()
    finally:
        workspace.close()


async def test_agent_git_config_then_submit_runs_nothing_on_the_host(env, tmp_path):
    markers = _markers(tmp_path)
    session = await env.open(env.get_task(TINY))
    try:
        q = shlex.quote
        setup = " && ".join([
            f"git config filter.pwn.clean {q('touch ' + str(markers['clean']) + '; cat')}",
            f"git config filter.pwn.smudge {q('touch ' + str(markers['smudge']) + '; cat')}",
            "git config filter.pwn.required true",
            f"git config core.fsmonitor {q('touch ' + str(markers['fsmonitor']))}",
            f"git config diff.external {q('touch ' + str(markers['diff']))}",
            f"git config diff.pwn.textconv {q('touch ' + str(markers['textconv']))}",
            "mkdir -p .git/info .git/hooks",
            "printf '* filter=pwn diff=pwn\\n' > .git/info/attributes",
            f"printf '#!/bin/sh\\ntouch {markers['hook']}\\n' > .git/hooks/post-index-change",
            "chmod +x .git/hooks/post-index-change",
            "git config core.hooksPath .git/hooks",
            "git init -q nested",  # an embedded repository with its own hostile config
            f"git -C nested config core.fsmonitor {q('touch ' + str(markers['fsmonitor']))}",
            "echo x > nested/file",
        ])
        done = await session.step(Action("bash", {"command": setup}))
        assert done.text.startswith("exit code 0"), done.text
        await session.step(Action("edit", {"path": "tinysemver/version.py", "old": FIX_OLD, "new": FIX_NEW}))
        submitted = await session.step(Action("submit", {}))
        assert submitted.done and "diff lines" in submitted.text
        answer = session.answer()
        assert FIX_NEW in answer and ".git" not in answer and "nested" not in answer
        _nothing_ran(markers)
        assert (await session.verify()).passed
        _nothing_ran(markers)
    finally:
        session.close()


async def test_agent_rewriting_its_git_history_does_not_change_the_answer(env):
    session = await env.open(env.get_task(TINY))
    try:
        await session.step(Action("edit", {"path": "tinysemver/version.py", "old": FIX_OLD, "new": FIX_NEW}))
        commit = ("git add -A && git -c user.name=a -c user.email=a@a commit -qm 'my fix' && "
                  "git update-ref refs/heads/fake HEAD && echo 'not a diff' > .git/info/exclude")
        done = await session.step(Action("bash", {"command": commit}))
        assert done.text.startswith("exit code 0"), done.text
        assert FIX_NEW in session.answer()  # against base_commit, not the agent's HEAD
        assert (await session.verify()).passed
    finally:
        session.close()
