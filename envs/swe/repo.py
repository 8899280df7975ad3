"""Repositories of SWE instances: a cached source repository per ``repo`` (a git directory, a plain
directory snapshotted into git, or a bundle), and a fresh checkout of ``base_commit`` per attempt."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from ..base import EnvError

_GIT_ENV = {"GIT_AUTHOR_NAME": "seasoned", "GIT_AUTHOR_EMAIL": "seasoned@localhost",
            "GIT_COMMITTER_NAME": "seasoned", "GIT_COMMITTER_EMAIL": "seasoned@localhost",
            "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+0000", "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+0000",
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}
IGNORED = (".tmp/", ".seasoned-venv/", "__pycache__/", ".pytest_cache/", "*.pyc")
_lock = threading.Lock()


def git(cwd: str | Path, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **_GIT_ENV}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, input=input)
    if check and done.returncode != 0:
        raise EnvError(f"git {' '.join(args[:3])} failed in {cwd}: {(done.stderr or done.stdout).strip()[:300]}")
    return done


def cache_dir() -> Path:
    home = Path(os.environ.get("SEASONED_HOME", Path.home() / ".seasoned"))
    return home / "cache" / "swe-repos"


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


def source_repo(repo: Path) -> Path:
    """A git repository holding ``repo``'s history (built once and cached for plain dirs and bundles)."""
    repo = Path(repo)
    if (repo / ".git").exists() or (repo.is_dir() and (repo / "HEAD").is_file() and (repo / "objects").is_dir()):
        return repo
    target = cache_dir() / f"{repo.name}-{_fingerprint(repo)}"
    with _lock:
        if (target / ".git").exists():
            return target
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=_ensure(cache_dir())))
        try:
            if repo.is_file():  # a git bundle
                git(staging.parent, "clone", "-q", str(repo), str(staging / "r"))
            else:  # a plain directory: one deterministic commit of its files
                shutil.copytree(repo, staging / "r", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
                git(staging / "r", "init", "-q")
                git(staging / "r", "add", "-A")
                git(staging / "r", "commit", "-q", "-m", f"snapshot of {repo.name}")
            os.replace(staging / "r", target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def checkout(repo: Path, base_commit: str, dest: Path) -> Path:
    """A fresh working tree of ``base_commit`` at ``dest`` (a clone sharing the cached objects)."""
    source = source_repo(repo)
    git(dest.parent, "clone", "-q", "--shared", "--no-checkout", str(source), str(dest))
    resolved = git(dest, "rev-parse", "--verify", "--quiet", f"{base_commit}^{{commit}}", check=False)
    if resolved.returncode != 0:
        raise EnvError(f"base_commit {base_commit!r} not found in repository {str(repo)!r}")
    git(dest, "checkout", "-q", "--detach", resolved.stdout.strip())
    (dest / ".git" / "info").mkdir(exist_ok=True)
    with open(dest / ".git" / "info" / "exclude", "a") as fh:
        fh.write("\n".join(IGNORED) + "\n")
    return dest


def diff_against(worktree: Path, base_commit: str) -> str:
    """Everything changed in the working tree since ``base_commit`` (new files included), as a diff."""
    git(worktree, "add", "-A")
    done = git(worktree, "diff", "--cached", "--binary", base_commit)
    git(worktree, "reset", "-q")
    return done.stdout


def apply_patch(worktree: Path, patch: str) -> tuple[bool, str]:
    """Apply a unified diff, trying ``git apply`` strictly, then leniently, then ``patch -p1 --fuzz``."""
    if not patch.strip():
        return True, "empty patch"
    patch = patch if patch.endswith("\n") else patch + "\n"
    attempts = [["git", "apply", "--whitespace=nowarn"],
                ["git", "apply", "--whitespace=nowarn", "--recount", "--inaccurate-eof"],
                ["patch", "-p1", "--batch", "--forward", "--fuzz=3", "--no-backup-if-mismatch"]]
    errors = []
    for cmd in attempts:
        if not shutil.which(cmd[0]):
            continue
        # git apply is all-or-nothing; patch(1) is dry-run first so a failure changes nothing.
        if cmd[0] == "patch":
            dry = subprocess.run(cmd + ["--dry-run"], cwd=worktree, input=patch, capture_output=True, text=True)
            if dry.returncode != 0:
                errors.append((dry.stdout or dry.stderr).strip()[:300])
                continue
        done = subprocess.run(cmd, cwd=worktree, input=patch, capture_output=True, text=True)
        if done.returncode == 0:
            return True, " ".join(cmd[:2])
        errors.append((done.stderr or done.stdout).strip()[:300])
    return False, errors[0] if errors else "no patch tool available"


def patched_files(patch: str) -> list[str]:
    """Paths a diff touches (its ``b/`` side, or the ``a/`` side for deletions)."""
    files = []
    for line in patch.splitlines():
        if line.startswith("diff --git "):
            parts = line.split()
            if len(parts) >= 4:
                files.append(parts[3][2:] if parts[3].startswith("b/") else parts[3])
    return files
