"""The ``swe`` environment: SWE-bench instances, Docker-free (a fresh checkout per attempt, tests in the
sandbox). Verification applies the candidate diff to a fresh checkout, restores and applies
``test_patch``, and runs FAIL_TO_PASS and PASS_TO_PASS: resolved when every one of them passes."""

from __future__ import annotations

import asyncio
import os
import shutil
import site
import sys
import tempfile
from pathlib import Path

from seasoned.tools.actions import Action, Param, ToolSpec, parse_edit_body
from seasoned.tools.errors import ToolError
from seasoned.tools.files import FileTools
from seasoned.tools.limits import Limits
from seasoned.tools.sandbox import Sandbox

from ..base import EnvError, Environment, Observation, Session, Task, Verdict
from . import repo as repos
from .instances import SWEInstance, load_jsonl
from .testing import run_tests

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


def _task(instance: SWEInstance) -> Task:
    # Metadata stays JSON-serializable and holds no reference fix: the env looks the instance up by id.
    return Task(instance.instance_id, "swe", PROMPT.format(problem=instance.problem_statement.strip()),
                metadata={"instance_id": instance.instance_id, "repo": str(instance.repo),
                          "base_commit": instance.base_commit})


class SWEEnv(Environment):
    """SWE-bench instances from a JSONL file (default: the three shipped fixtures)."""

    name = "swe"
    description = "SWE-bench-format repository bug fixes (JSONL; repo = local path or git bundle), no Docker."
    interactive = True

    def __init__(self, path: str | os.PathLike | None = None, *, test_timeout: float = 300.0,
                 command_timeout: float = 60.0, memory_mb: int = 2048):
        self.path = Path(path) if path else FIXTURES
        self.instances = load_jsonl(self.path)
        self.test_timeout = test_timeout
        self.limits = Limits(time_s=command_timeout, memory_mb=memory_mb, max_output_chars=6000)

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

    async def prepare(self, instance: SWEInstance) -> tuple[Path, Path, Sandbox]:
        """A fresh checkout of the instance (temp dir, its repo dir, a sandbox rooted at the repo)."""
        tmp = Path(tempfile.mkdtemp(prefix="seasoned-swe-"))
        try:
            worktree = await asyncio.to_thread(repos.checkout, instance.repo, instance.base_commit, tmp / "repo")
            sandbox = Sandbox(worktree, self.limits)
            if instance.install:
                await self._install(instance, worktree, sandbox)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return tmp, worktree, sandbox

    async def _install(self, instance: SWEInstance, worktree: Path, sandbox: Sandbox) -> None:
        """A workspace venv that sees our packages (``.pth``) and takes the instance's ``install``."""
        venv = worktree / ".seasoned-venv"
        await asyncio.to_thread(_make_venv, venv)
        sandbox.extra_env["PATH"] = f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
        sandbox.extra_env["VIRTUAL_ENV"] = str(venv)
        result = await sandbox.arun(instance.install, timeout=self.test_timeout, network=True)
        if not result.ok:
            raise EnvError(f"instance {instance.instance_id}: install command failed:\n{result.render()[-800:]}")

    # --- verification ------------------------------------------------------------------------------
    async def verify(self, task: Task, answer: str) -> Verdict:
        """Apply the diff ``answer`` to a fresh checkout and run the instance's tests."""
        instance = self._instance(task)
        patch = self.extract_answer(answer) if answer and "diff" in answer and "```" in answer else answer
        tmp, worktree, sandbox = await self.prepare(instance)
        try:
            return await self.evaluate(instance, worktree, sandbox, patch or "")
        finally:
            sandbox.cleanup()
            shutil.rmtree(tmp, ignore_errors=True)

    async def evaluate(self, instance: SWEInstance, worktree: Path, sandbox: Sandbox, patch: str) -> Verdict:
        ok, how = await asyncio.to_thread(repos.apply_patch, worktree, patch)
        if not ok:
            return Verdict(0.0, False, {"resolved": False, "reason": f"the patch does not apply: {how}"})
        # The tests of test_patch are the reference ones: undo any change the candidate made to them.
        for path in repos.patched_files(instance.test_patch):
            exists = repos.git(worktree, "cat-file", "-e", f"HEAD:{path}", check=False).returncode == 0
            if exists:
                repos.git(worktree, "checkout", "-q", "HEAD", "--", path)
            elif (worktree / path).exists():
                (worktree / path).unlink()
        ok, how = await asyncio.to_thread(repos.apply_patch, worktree, instance.test_patch)
        if not ok:
            return Verdict(0.0, False, {"resolved": False, "reason": f"test_patch does not apply: {how}"})
        everything = list(dict.fromkeys(instance.fail_to_pass + instance.pass_to_pass))
        f2p = p2p = await run_tests(sandbox, everything, instance.test_cmd, self.test_timeout)
        f2p_ok = [t for t in instance.fail_to_pass if f2p.passed(t)]
        p2p_ok = [t for t in instance.pass_to_pass if p2p.passed(t)]
        resolved = len(f2p_ok) == len(instance.fail_to_pass) and len(p2p_ok) == len(instance.pass_to_pass)
        details = {
            "resolved": resolved,
            "FAIL_TO_PASS": {"passed": len(f2p_ok), "total": len(instance.fail_to_pass),
                             "failing": [t for t in instance.fail_to_pass if not f2p.passed(t)]},
            "PASS_TO_PASS": {"passed": len(p2p_ok), "total": len(instance.pass_to_pass),
                             "failing": [t for t in instance.pass_to_pass if not p2p.passed(t)]},
            "test_output": "\n".join(f2p.outputs)[-3000:],
        }
        return Verdict(1.0 if resolved else 0.0, resolved, details)

    async def open(self, task: Task) -> "SWESession":
        instance = self._instance(task)
        tmp, worktree, sandbox = await self.prepare(instance)
        return SWESession(self, task, instance, tmp, worktree, sandbox)


def _make_venv(venv: Path) -> None:
    import venv as venv_module

    venv_module.EnvBuilder(with_pip=False, symlinks=True).create(venv)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_dir = venv / "lib" / version / "site-packages"
    site_dir.mkdir(parents=True, exist_ok=True)
    (site_dir / "_seasoned_base.pth").write_text("\n".join(site.getsitepackages()) + "\n")


class SWESession(Session):
    """One attempt: a private checkout, shell and file tools confined to it, verify on demand."""

    def __init__(self, env: SWEEnv, task: Task, instance: SWEInstance, tmp: Path, worktree: Path,
                 sandbox: Sandbox):
        self.env, self.task, self.instance = env, task, instance
        self.tmp, self.worktree, self.sandbox = tmp, worktree, sandbox
        self.files = FileTools(worktree)
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
            return self.files.search(args["pattern"], args.get("path", "."))
        if action.name == "edit":
            return self.files.str_replace(args["path"], args["old"], args["new"])
        if action.name == "create":
            return self.files.create(args["path"], args["content"])
        if action.name == "submit":
            self.submitted = True
            diff = self.answer()
            return "submitted" + (f" ({len(diff.splitlines())} diff lines)" if diff else " (no changes)")
        raise ToolError(f"unknown action {action.name!r}; available: {', '.join(t.name for t in self.tools)}")

    def answer(self) -> str:
        """The diff of the attempt against ``base_commit``."""
        if not self.worktree.exists():
            return ""
        return repos.diff_against(self.worktree, "HEAD")

    async def verify(self) -> Verdict:
        return await self.env.verify(self.task, self.answer())

    def close(self) -> None:
        self.sandbox.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)
