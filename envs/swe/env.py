"""The ``swe`` environment: SWE-bench instances, Docker-free (a fresh checkout per attempt, tests in the
sandbox).

The judge rebuilds the tree it evaluates from ``base_commit`` plus the text of the candidate diff,
never from an agent's tree or ``.git``: it refuses a diff that touches ``.git/`` or ``.gitattributes``
(or leaves the tree), drops the candidate's changes to the files ``test_patch`` touches, applies both
inside the sandbox, runs every FAIL_TO_PASS and PASS_TO_PASS test in one run and reads their
outcomes from report files. Resolved when every one of them passes. The candidate's changes to the test
harness (conftest files, test modules, pytest configuration, sitecustomize/usercustomize/``.pth``) are
not applied; the verdict lists them under ``ignored_changes``."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from seasoned.errors import EnvError, ToolError
from seasoned.tools.actions import Action, Param, ToolSpec, parse_edit_body
from seasoned.tools.files import FileTools, read_inside, resolve_in, write_new_at
from seasoned.tools.limits import Limits
from seasoned.tools.sandbox import Sandbox

from ..base import Environment, Observation, Session, Task, Verdict
from . import diffs
from . import repo as repos
from .instances import SWEInstance, load_jsonl
from .testing import run_tests
from .workspace import (
    INSTALL_SEED,
    SEED,
    Attempt,
    install_env,
    make_venv,
    pip_cache,
    project_module,
    seed_dirs,
)

_log = logging.getLogger(__name__)
MAX_CONFIG_BYTES = 1_000_000
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "swe" / "instances.jsonl"

TOOLS = [
    ToolSpec("bash", "Run a shell command in the repository (no network; time limited).",
             (Param("command", "the shell command", rest=True),), usage="bash <command>"),
    ToolSpec("view", "Show a file with line numbers (optionally a line range), or list a directory.",
             (Param("path", "file or directory, relative to the repository root"),
              Param("start", "first line", "integer", False), Param("end", "last line", "integer", False)),
             usage="view <path> [start] [end]"),
    ToolSpec("search", "Find lines matching a regular expression in the repository (or under a path).",
             (Param("pattern", "regular expression"), Param("path", "where to search", required=False)),
             usage="search <pattern> [path]"),
    ToolSpec("edit", "Replace one exact occurrence of `old` by `new` in a file.",
             (Param("path", "file to edit"), Param("old", "exact text to replace"), Param("new", "replacement text")),
             usage="edit <path>\n<<<<<<< SEARCH\n<exact old lines>\n=======\n<new lines>\n>>>>>>> REPLACE",
             parse_body=parse_edit_body),
    ToolSpec("create", "Create or overwrite a file with the given content.",
             (Param("path", "file to write"), Param("content", "the whole file content", rest=True)),
             usage="create <path>\n<content>"),
    ToolSpec("submit", "Finish: your changes to the repository are the answer.", (), usage="submit"),
]

PROMPT = """You are fixing an issue in the repository checked out in your working directory.

<issue>
{problem}
</issue>

Find the cause, change the source code to fix it (do not edit the tests), check your fix by running
code or tests, then submit. One action per reply."""

# git and patch(1) as run inside the sandbox on a tree a candidate diff is applied to.
_GIT = ["env", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1", "git",
        *[arg for item in repos.SAFE_CONFIG for arg in ("-c", item)]]
_APPLY = [_GIT + ["apply", "--whitespace=nowarn"],
          _GIT + ["apply", "--whitespace=nowarn", "--recount", "--inaccurate-eof"],
          ["patch", "-p1", "-u", "--batch", "--forward", "--fuzz=3", "--no-backup-if-mismatch", "-r", "/dev/null"]]


def _task(instance: SWEInstance) -> Task:
    # Metadata stays JSON-serializable and holds no reference fix: the env looks the instance up by id.
    return Task(instance.instance_id, "swe", PROMPT.format(problem=instance.problem_statement.strip()),
                metadata={"instance_id": instance.instance_id, "repo": instance.repo_name or str(instance.repo),
                          "base_commit": instance.base_commit})


@dataclass
class Workspace:
    """A prepared attempt: its directories, the sandbox rooted at the checkout, the base commit id."""

    attempt: Attempt
    sandbox: Sandbox
    commit: str
    python: str
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def repo(self) -> Path:
        return self.attempt.repo

    def close(self) -> None:
        self.sandbox.cleanup()
        self.attempt.remove()


def _base_text(repo: Path, path: str) -> str | None:
    """A file of the untouched checkout ('' when it does not exist, None when it cannot be read)."""
    try:
        target = resolve_in(repo, path)
        if not os.path.lexists(target):
            return ""
        return read_inside(repo, target, limit=MAX_CONFIG_BYTES, errors="replace")
    except (OSError, ToolError):
        return None


class SWEEnv(Environment):
    """SWE-bench instances from a JSONL file (default: the three shipped fixtures).

    ``repos``: the repositories directory for ``owner/name`` repos (else ``SEASONED_SWE_REPOS``).
    ``allow_paths``: more directories a ``repo`` path may point into (``os.pathsep``-separated or a list).
    ``install`` / ``test_cmd``: used for instances that have none of their own. ``memory_mb``: per process;
    ``total_memory_mb``: all processes of one command together (a memory cgroup, where there is one);
    ``disk_mb``: everything an attempt writes (checkout, venv, build files; a loop-mounted filesystem, where
    root can make one)."""

    name = "swe"
    description = "SWE-bench-format repository bug fixes (JSONL as published; repos dir, path or bundle), no Docker."
    interactive = True

    def __init__(self, path: str | os.PathLike | None = None, *, repos: str | os.PathLike | None = None,
                 allow_paths: str | list[str] | None = None, install: str | None = None, test_cmd: str | None = None, test_timeout: float = 300.0,
                 install_timeout: float = 900.0, command_timeout: float = 60.0, memory_mb: int = 4096,
                 total_memory_mb: int = 8192, disk_mb: int = 8192, max_output_chars: int = 6000):
        self.path = Path(path) if path else FIXTURES
        self.instances = load_jsonl(self.path, repos=repos, allow_paths=allow_paths)
        self.install, self.test_cmd = install, test_cmd
        self.test_timeout, self.install_timeout = test_timeout, install_timeout
        self.limits = Limits(time_s=command_timeout, memory_mb=memory_mb, total_memory_mb=total_memory_mb,
                             max_output_chars=max_output_chars, max_processes=512)
        self.disk_mb = disk_mb

    def tasks(self, n=None, seed=0, difficulty=None) -> list[Task]:
        chosen = list(self.instances)
        if seed:
            import random

            random.Random(seed).shuffle(chosen)
        return [_task(i) for i in chosen[: n if n is not None else len(chosen)]]

    def get_task(self, task_id: str) -> Task:
        return _task(self.instance(task_id))

    def extract_answer(self, text: str) -> str | None:
        """The diff in a text (a ```diff block or a bare ``diff --git`` patch)."""
        from ..answers import code_blocks

        blocks = [code for lang, code in code_blocks(text) if lang in ("diff", "patch") or "--- " in code]
        if blocks:
            return blocks[-1]
        start = (text or "").find("diff --git")
        return text[start:] if start >= 0 else None

    # --- workspaces --------------------------------------------------------------------------------
    def instance(self, task_id: str) -> SWEInstance:
        """The full instance (reference ``patch`` included, for evaluation only)."""
        for instance in self.instances:
            if instance.instance_id == task_id:
                return instance
        raise self.unknown_task(task_id, [i.instance_id for i in self.instances])

    def _instance(self, task: Task) -> SWEInstance:
        if task.env != self.name:
            raise EnvError(f"task {task.id!r} belongs to environment {task.env!r}, not swe")
        return self.instance(task.metadata.get("instance_id", task.id))

    def _sandbox(self, attempt: Attempt, *, cache: Path | None = None, git_writable: bool = True) -> Sandbox:
        """The attempt's sandbox: the checkout, its venv and report directory, the seed (and pip with its
        cache for an install). For the judge the checkout's ``.git`` is read-only: nothing applied or run can
        change it. This product's venv is not visible (``base_python``)."""
        rw = [attempt.venv, attempt.reports] + ([cache] if cache else [])
        ro = attempt.seeds + (attempt.install_seeds if cache else []) + ([] if git_writable else [attempt.repo / ".git"])
        box = Sandbox(attempt.repo, self.limits, ro_binds=ro, rw_binds=rw, base_python=True)
        box.extra_env.update(install_env(attempt.venv, cache))
        return box

    async def prepare(self, instance: SWEInstance, *, private_git: bool = False) -> Workspace:
        """A fresh checkout of the instance with its own venv, the install done (``private_git``: keep a
        copy of ``.git`` the agent never sees, to read its changes through)."""
        attempt = Attempt.create(self.disk_mb)
        seconds = {}
        try:
            started = time.perf_counter()
            commit = await asyncio.to_thread(repos.checkout, instance.repo, instance.base_commit, attempt.repo)
            if private_git:
                await asyncio.to_thread(repos.keep_private_copy, attempt.repo, attempt.git_dir)
            project = project_module(instance.repo_name or str(instance.repo))
            attempt.seeds = await asyncio.to_thread(seed_dirs, SEED, project)
            installer = await asyncio.to_thread(seed_dirs, INSTALL_SEED, "")
            attempt.install_seeds = [path for path in installer if path not in attempt.seeds]
            python = str(await asyncio.to_thread(make_venv, attempt.venv, attempt.seeds + attempt.install_seeds))
            seconds["checkout"] = round(time.perf_counter() - started, 2)
            sandbox = self._sandbox(attempt, git_writable=private_git)
            install = instance.install or self.install
            if install:
                started = time.perf_counter()
                await self._install(instance, install, attempt, git_writable=private_git)
                seconds["install"] = round(time.perf_counter() - started, 2)
        except BaseException:
            attempt.remove()
            raise
        return Workspace(attempt, sandbox, commit, python, seconds)

    async def _install(self, instance: SWEInstance, command: str, attempt: Attempt, git_writable: bool) -> None:
        """The instance's ``install`` in the workspace venv, with the network and the instance's pip cache."""
        cache = pip_cache(str(self.path.resolve()), instance.instance_id, str(instance.repo), command)
        box = self._sandbox(attempt, cache=cache, git_writable=git_writable)
        try:
            result = await box.arun(command, timeout=self.install_timeout, network=True)
        finally:
            box.cleanup()
        if not result.ok:
            raise EnvError(f"instance {instance.instance_id}: install command failed:\n{result.render()[-800:]}")

    # --- verification ------------------------------------------------------------------------------
    async def verify(self, task: Task, answer: str) -> Verdict:
        """Apply the diff ``answer`` to a fresh checkout of ``base_commit`` and run the instance's tests."""
        instance = self._instance(task)
        patch = self.extract_answer(answer) if answer and "diff" in answer and "```" in answer else answer
        try:
            diffs.check(patch or "")
        except EnvError as exc:
            return Verdict(0.0, False, {"resolved": False, "reason": f"the patch is refused: {exc}"})
        workspace = await self.prepare(instance)
        try:
            verdict = await self.evaluate(instance, workspace, patch or "")
            verdict.details["seconds"] = {**workspace.seconds, **verdict.details.get("seconds", {})}
            return verdict
        finally:
            workspace.close()

    async def apply(self, workspace: Workspace, patch: str) -> tuple[bool, str]:
        """Apply a diff inside the sandbox: ``git apply`` strictly, then leniently, then ``patch -p1``."""
        if not patch.strip():
            return True, "empty patch"
        path = workspace.attempt.reports / f"patch-{uuid.uuid4().hex[:8]}.diff"
        reports = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)  # the sandbox writes there
        try:
            write_new_at(reports, path.name, (patch if patch.endswith("\n") else patch + "\n").encode(
                "utf-8", "surrogateescape"))
        finally:
            os.close(reports)
        errors = []
        try:
            for argv in _APPLY:
                if argv[0] == "patch":  # patch(1) is dry-run first so that a failure changes nothing
                    dry = await workspace.sandbox.arun(argv + ["--dry-run", "-i", str(path)], timeout=120)
                    if not dry.ok:
                        errors.append(dry.render()[:300])
                        continue
                    done = await workspace.sandbox.arun(argv + ["-i", str(path)], timeout=120)
                else:
                    done = await workspace.sandbox.arun(argv + [str(path)], timeout=120)
                if done.ok:
                    return True, "git apply" if argv[0] == "env" else "patch"
                errors.append(done.render()[:300])
        finally:
            path.unlink(missing_ok=True)
        return False, errors[0] if errors else "no patch tool"

    async def evaluate(self, instance: SWEInstance, workspace: Workspace, patch: str) -> Verdict:
        """Judge ``patch`` on a prepared, untouched workspace."""
        try:
            diffs.check(patch)
        except EnvError as exc:
            return Verdict(0.0, False, {"resolved": False, "reason": f"the patch is refused: {exc}"})
        # The tests of test_patch are the reference ones: the candidate's changes to them do not count;
        # nor do its changes to the rest of the test harness (conftest files, test modules, pytest
        # configuration, interpreter start-up files), which could decide the verdict rather than the code.
        candidate = diffs.without(patch, set(diffs.touched(instance.test_patch)))
        ignored = diffs.harness_changes(candidate, functools.partial(_base_text, workspace.repo))
        candidate = diffs.without(candidate, set(ignored))
        ok, how = await self.apply(workspace, candidate)
        if not ok:
            return Verdict(0.0, False, {"resolved": False, "reason": f"the patch does not apply: {how}"})
        ok, how = await self.apply(workspace, instance.test_patch)
        if not ok:
            return Verdict(0.0, False, {"resolved": False, "reason": f"test_patch does not apply: {how}"})
        everything = list(dict.fromkeys(instance.fail_to_pass + instance.pass_to_pass))
        started = time.perf_counter()
        report = await run_tests(workspace.sandbox, everything, instance.test_cmd or self.test_cmd,
                                 self.test_timeout, reports=workspace.attempt.reports, python=workspace.python)
        f2p_fail = [t for t in instance.fail_to_pass if not report.passed(t)]
        p2p_fail = [t for t in instance.pass_to_pass if not report.passed(t)]
        resolved = not f2p_fail and not p2p_fail
        details = {
            "resolved": resolved,
            "FAIL_TO_PASS": {"passed": len(instance.fail_to_pass) - len(f2p_fail),
                             "total": len(instance.fail_to_pass), "failing": f2p_fail},
            "PASS_TO_PASS": {"passed": len(instance.pass_to_pass) - len(p2p_fail),
                             "total": len(instance.pass_to_pass), "failing": p2p_fail},
            "statuses": {t: report.statuses[t] for t in f2p_fail + p2p_fail},
            "ignored_changes": {path: f"not applied: {why} is part of the test harness"
                                for path, why in ignored.items()},
            "notes": report.notes,
            "test_output": "\n".join(report.outputs)[-3000:],
            "seconds": {"tests": round(time.perf_counter() - started, 2)},
        }
        return Verdict(1.0 if resolved else 0.0, resolved, details)

    async def open(self, task: Task) -> SWESession:
        instance = self._instance(task)
        workspace = await self.prepare(instance, private_git=True)
        return SWESession(self, task, instance, workspace)


class SWESession(Session):
    """One attempt: a private checkout, shell and file tools confined to it, verify on demand."""

    def __init__(self, env: SWEEnv, task: Task, instance: SWEInstance, workspace: Workspace):
        self.env, self.task, self.instance, self.workspace = env, task, instance, workspace
        self.worktree, self.sandbox = workspace.repo, workspace.sandbox
        self.files = FileTools(self.worktree)
        self.tools = list(TOOLS)
        self.submitted = False
        self._last = Observation(f"Repository files:\n{self.files.list('.', limit=200)}")

    def observation(self) -> Observation:
        return self._last

    async def step(self, action: Action) -> Observation:
        try:
            text = await self._do(action)
        except ToolError as exc:
            text = f"error: {exc}"
        self._last = Observation(text, done=self.submitted)
        return self._last

    async def _do(self, action: Action) -> str:
        args = action.args
        if action.name == "bash":
            return (await self.sandbox.arun(args["command"])).render()
        if action.name == "view":
            return self.files.view(args["path"], args.get("start"), args.get("end"))
        if action.name == "search":
            return await asyncio.to_thread(self.files.search, args["pattern"], args.get("path", "."))
        if action.name == "edit":
            return self.files.str_replace(args["path"], args["old"], args["new"])
        if action.name == "create":
            return self.files.create(args["path"], args["content"])
        if action.name == "submit":
            self.submitted = True
            diff = await asyncio.to_thread(self.answer)
            return "submitted" + (f" ({len(diff.splitlines())} diff lines)" if diff else " (no changes)")
        raise ToolError(f"unknown action {action.name!r}; available: {', '.join(t.name for t in self.tools)}")

    def answer(self) -> str:
        """The diff of the attempt against ``base_commit``, read through the private ``.git`` copy
        (empty, with a warning, when git cannot read the tree)."""
        if not self.worktree.exists():
            return ""
        try:
            return repos.diff_against(self.workspace.attempt.git_dir, self.worktree, self.workspace.commit)
        except EnvError as exc:
            _log.warning("swe %s: cannot read the attempt's changes: %s", self.task.id, exc)
            return ""

    async def verify(self) -> Verdict:
        return await self.env.verify(self.task, await asyncio.to_thread(self.answer))

    def close(self) -> None:
        self.workspace.close()
