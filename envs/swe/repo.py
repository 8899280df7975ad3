"""Repositories of SWE instances: a cached source repository per ``repo`` (a git directory, a plain
directory snapshotted into git, or a bundle), a checkout per attempt in which only ``base_commit`` and
its ancestors exist, and the diff of an attempt.

Git here runs with nothing of the host's or the tree's configuration that could run a program:
no system or global config, hooks, fsmonitor, attributes file, external diff or textconv. The only
git commands run on the host touch trees no model has written to, or (``diff_against``) read a tree
an agent wrote through a private git directory the agent never saw."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from seasoned.errors import EnvError
from seasoned.settings import settings

_GIT_ENV = {"GIT_AUTHOR_NAME": "seasoned", "GIT_AUTHOR_EMAIL": "seasoned@localhost",
            "GIT_COMMITTER_NAME": "seasoned", "GIT_COMMITTER_EMAIL": "seasoned@localhost",
            "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+0000", "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+0000",
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0",
            "GIT_ATTR_NOSYSTEM": "1"}
# Config that makes git run nothing it was not asked to run, whatever a repository's own config says.
SAFE_CONFIG = ("core.hooksPath=/dev/null", "core.fsmonitor=false", "core.attributesFile=/dev/null",
               "diff.external=", "core.pager=cat", "safe.directory=*", "core.untrackedCache=false",
               "protocol.allow=never", "protocol.file.allow=always", "submodule.recurse=false",
               "core.logAllRefUpdates=false", "gc.auto=0", "init.templateDir=")
IGNORED = (".tmp/", "__pycache__/", ".pytest_cache/", "*.pyc", "*.egg-info/", ".eggs/", ".cache/")
GIT_TIMEOUT = 600
_lock = threading.Lock()


def git_env() -> dict[str, str]:
    """The host environment without any ``GIT_*`` variable, plus ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(_GIT_ENV)
    return env


def git(cwd: str | Path, *args: str, check: bool = True, input: str | None = None,
        git_dir: Path | None = None, work_tree: Path | None = None) -> subprocess.CompletedProcess:
    """``git`` with ``SAFE_CONFIG`` (and an explicit git dir / work tree when given)."""
    argv = ["git"]
    for item in SAFE_CONFIG:
        argv += ["-c", item]
    if git_dir is not None:
        argv.append(f"--git-dir={git_dir}")
    if work_tree is not None:
        argv.append(f"--work-tree={work_tree}")
    try:
        done = subprocess.run(argv + list(args), cwd=cwd, env=git_env(), capture_output=True, text=True,
                              input=input, timeout=GIT_TIMEOUT, errors="surrogateescape", check=False)
    except subprocess.TimeoutExpired:
        raise EnvError(f"git {' '.join(args[:2])} took longer than {GIT_TIMEOUT}s in {cwd}") from None
    if check and done.returncode != 0:
        raise EnvError(f"git {' '.join(args[:3])} failed in {cwd}: {(done.stderr or done.stdout).strip()[:300]}")
    return done


def cache_dir() -> Path:
    return settings().home / "cache" / "swe-repos"


def _fingerprint(path: Path) -> str:
    digest = hashlib.sha256(str(path).encode())
    if path.is_file():
        stat = path.stat()
        digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    else:
        for file in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            digest.update(str(file.relative_to(path)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def is_git_dir(path: Path) -> bool:
    """A bare repository (``x.git/``) or a ``.git`` directory itself."""
    return path.is_dir() and (path / "HEAD").is_file() and (path / "objects").is_dir()


def source_repo(repo: Path) -> Path:
    """A git repository holding ``repo``'s history (built once and cached for plain dirs and bundles)."""
    repo = Path(repo)
    if (repo / ".git").exists() or is_git_dir(repo):
        return repo
    target = cache_dir() / f"{repo.name}-{_fingerprint(repo)}"
    with _lock:
        if (target / ".git").exists():
            return target
        cache_dir().mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=cache_dir()))
        try:
            if repo.is_file():  # a git bundle
                git(staging, "clone", "-q", "--no-checkout", str(repo), str(staging / "r"))
            else:  # a plain directory: one deterministic commit of its files
                shutil.copytree(repo, staging / "r", symlinks=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
                git(staging / "r", "init", "-q")
                git(staging / "r", "add", "-A")
                git(staging / "r", "commit", "-q", "--no-verify", "-m", f"snapshot of {repo.name}")
            try:
                os.replace(staging / "r", target)
            except OSError:  # another process built it at the same time
                if not (target / ".git").exists():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_commit(source: Path, base_commit: str, label: str) -> str:
    """The full id of ``base_commit`` (a commit id, tag or ``HEAD``) in ``source``."""
    if base_commit.startswith("-"):
        raise EnvError(f"base_commit {base_commit!r} is not a commit")
    found = git(source, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{base_commit}^{{commit}}",
                check=False)
    if found.returncode != 0:
        raise EnvError(f"base_commit {base_commit!r} not found in repository {label!r}")
    return found.stdout.strip()


def checkout(repo: Path, base_commit: str, dest: Path) -> str:
    """A working tree of ``base_commit`` at ``dest`` whose ``.git`` holds that commit and its ancestors
    only: no branch, tag, remote, reflog or object of a later commit. Returns the commit id."""
    source = source_repo(repo)
    sha = resolve_commit(source, base_commit, str(repo))
    dest.mkdir(parents=True, exist_ok=True)
    git(dest, "init", "-q", "--template=")
    git(dest, "-c", "uploadpack.allowAnySHA1InWant=true", "fetch", "-q", "--no-tags", "--no-write-fetch-head",
        "--no-recurse-submodules", str(source.resolve()), f"{sha}:refs/seasoned/base")
    git(dest, "checkout", "-q", "--detach", sha)
    git(dest, "update-ref", "-d", "refs/seasoned/base")
    info = dest / ".git" / "info"
    info.mkdir(exist_ok=True)
    (info / "exclude").write_text("\n".join(IGNORED) + "\n")
    for item in SAFE_CONFIG[-3:]:  # no reflog, no gc, no templates for anyone using this .git later
        key, _, value = item.partition("=")
        git(dest, "config", key, value)
    return sha


def keep_private_copy(worktree: Path, git_dir: Path) -> None:
    """Copy ``worktree/.git`` to ``git_dir`` before anyone acts in the tree (see ``diff_against``)."""
    shutil.copytree(worktree / ".git", git_dir, symlinks=True)


def nested_repositories(worktree: Path, limit: int = 200_000) -> list[str]:
    """Directories below ``worktree`` that hold their own ``.git`` (left out of an answer: git would
    record them as submodule links, or refuse them). Symlinks are not followed."""
    found, seen = [], 0
    for root, dirs, files in os.walk(worktree):
        seen += len(dirs) + len(files)
        if seen > limit:
            break
        if root != str(worktree) and (".git" in dirs or ".git" in files):
            found.append(os.path.relpath(root, worktree))
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if d != ".git"]
    return found


def diff_against(git_dir: Path, worktree: Path, base_commit: str) -> str:
    """Everything changed in ``worktree`` since ``base_commit`` (new files included), as a diff.

    Reads the tree through ``git_dir``, a private copy of its ``.git`` made before the agent acted:
    the agent's own ``.git`` (config with filters, hooks, a moved HEAD) is never read, nor are the
    ``.git`` directories of repositories nested in the tree (they are left out)."""
    nested = [f":(exclude,literal){path}" for path in nested_repositories(worktree)]
    git(worktree, "add", "-A", "--", ".", *nested, git_dir=git_dir, work_tree=worktree)
    done = git(worktree, "diff", "--cached", "--binary", "--no-ext-diff", "--no-textconv", "--no-renames",
               "--no-color", base_commit, "--", git_dir=git_dir, work_tree=worktree)
    return done.stdout
