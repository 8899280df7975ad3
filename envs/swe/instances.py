"""SWE-bench instances: loading JSONL files as published (SWE-bench's field names, ``repo`` as
``owner/name``, test lists as JSON strings, extra fields ignored), resolving repositories, checking.

``repo`` is either a path (absolute, or relative to the JSONL file) to a git directory, a plain
directory or a ``.bundle`` file, or ``owner/name`` looked up in a repositories directory (``--repos``,
else ``SEASONED_SWE_REPOS``, else the JSONL file's directory) as ``owner__name.bundle``,
``owner__name/`` (a checkout or plain directory), ``owner__name.git/`` (bare) or ``owner/name/``.
Either way it must resolve (symlinks followed) inside one of those directories or an explicit
``allow_paths`` entry: never ``/``, a home directory, or a ``..`` way out."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from seasoned.errors import EnvError
from seasoned.settings import env_name, settings
from seasoned.tools.bwrap import too_broad

REQUIRED = ("instance_id", "repo", "problem_statement", "test_patch", "FAIL_TO_PASS")
REPOS_SETTING = env_name("swe_repos")
_OWNER_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
MAX_LINE_CHARS = 50_000_000


@dataclass
class SWEInstance:
    """One SWE-bench instance. ``repo`` is resolved to a local directory or ``.bundle`` file;
    ``patch`` (the reference fix) is kept for evaluation only and never shown to an agent."""

    instance_id: str
    repo: Path
    base_commit: str
    problem_statement: str
    test_patch: str
    fail_to_pass: list[str]
    pass_to_pass: list[str] = field(default_factory=list)
    patch: str | None = field(default=None, repr=False)
    install: str | None = None
    test_cmd: str | None = None
    hints_text: str = ""
    repo_name: str = ""


def _test_list(value, field_name: str, where: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            raise EnvError(f"{where}: {field_name} must be a JSON list of test ids, got {value[:80]!r}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise EnvError(f"{where}: {field_name} must be a list of test id strings")
    return value


def repos_dirs(repos: str | os.PathLike | None, base_dir: Path) -> list[Path]:
    """Where ``owner/name`` repositories are looked up, in order."""
    found = [Path(repos).expanduser()] if repos else []
    found += [Path(p).expanduser() for p in (settings().swe_repos or "").split(os.pathsep) if p.strip()]
    return found + [base_dir]


def allowed_roots(repos: str | os.PathLike | None, base_dir: Path,
                  allow_paths: str | os.PathLike | list | None = None) -> list[Path]:
    """Where a ``repo`` may resolve to: the repositories directories (``repos``, ``SEASONED_SWE_REPOS``, the
    JSONL file's directory) and the explicit ``allow_paths`` (a list, or one ``os.pathsep``-separated
    string); ``/``, a home directory and ``/home`` never count, even when given."""
    if isinstance(allow_paths, (str, os.PathLike)):
        allow_paths = [p for p in str(allow_paths).split(os.pathsep) if p.strip()]
    roots = [Path(p).expanduser().resolve() for p in [*repos_dirs(repos, base_dir), *(allow_paths or [])]]
    return list(dict.fromkeys(r for r in roots if not too_broad(r)))


def _inside(path: Path, roots: list[Path]) -> bool:
    return not too_broad(path) and any(path == root or root in path.parents for root in roots)


def _candidates(directory: Path, owner_name: str) -> list[Path]:
    flat = owner_name.replace("/", "__")
    return [directory / f"{flat}.bundle", directory / flat, directory / f"{flat}.git", directory / owner_name]


def resolve_repo(value: str, base_dir: Path, repos: str | os.PathLike | None, where: str,
                 allow_paths: str | os.PathLike | list | None = None) -> Path:
    """``repo`` as a local path (directory or bundle) inside ``allowed_roots``; errors say where it was
    looked for. A JSONL file is input: its ``repo`` cannot make the host copy ``/``, a home directory or
    anything outside the repositories directories into a workspace an agent reads."""
    if not value or "\x00" in value:
        raise EnvError(f"{where}: repo must be a path or owner/name")
    path = Path(value)  # no ~ expansion: a home directory is never a repositories directory
    path = path if path.is_absolute() else (base_dir / path)
    if path.exists():
        found = path.resolve()
    elif _OWNER_NAME.match(value) and not value.startswith("."):
        dirs = repos_dirs(repos, base_dir)
        found = next((c.resolve() for d in dirs for c in _candidates(d, value) if c.exists()), None)
        if found is None:
            flat = value.replace("/", "__")
            raise EnvError(f"{where}: repository {value!r} not found: put {flat}.bundle, {flat}/ or {flat}.git/ "
                           f"in a repositories directory given by --repos or {REPOS_SETTING} "
                           f"(looked in: {', '.join(str(d) for d in dirs)})")
    else:
        raise EnvError(f"{where}: repository {value!r} not found (looked at {path}); give a local directory, "
                       f"a git bundle file, or owner/name with a repositories directory ({REPOS_SETTING})")
    roots = allowed_roots(repos, base_dir, allow_paths)
    if not _inside(found, roots):
        raise EnvError(f"{where}: repository {value!r} resolves to {str(found)!r}, outside the repositories "
                       f"directories ({', '.join(map(str, roots)) or 'none'}); put it in one, or allow its "
                       f"directory explicitly (allow_paths, e.g. --env-opt allow_paths=DIR)")
    if found.is_file() and found.suffix != ".bundle":
        raise EnvError(f"{where}: repository {str(found)!r} is a file but not a git bundle (*.bundle)")
    return found


def _text(record: dict, key: str, where: str) -> str | None:
    value = record.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise EnvError(f"{where}: {key} must be a string")
    return value


def parse_instance(record: dict, base_dir: Path, where: str, repos: str | os.PathLike | None = None,
                   allow_paths: str | os.PathLike | list | None = None) -> SWEInstance:
    """One JSON record -> ``SWEInstance``. Unknown fields (``version``, ``created_at``,
    ``environment_setup_commit``...) are accepted and ignored."""
    if not isinstance(record, dict):
        raise EnvError(f"{where}: expected a JSON object")
    missing = [k for k in REQUIRED if not record.get(k)]
    if missing:
        raise EnvError(f"{where}: missing field(s) {', '.join(missing)}")
    for key in ("instance_id", "repo", "problem_statement", "test_patch"):
        _text(record, key, where)
    fail_to_pass = _test_list(record.get("FAIL_TO_PASS"), "FAIL_TO_PASS", where)
    pass_to_pass = _test_list(record.get("PASS_TO_PASS"), "PASS_TO_PASS", where)
    repo = resolve_repo(str(record["repo"]), base_dir, repos, where, allow_paths)
    return SWEInstance(
        instance_id=str(record["instance_id"]), repo=repo,
        base_commit=_text(record, "base_commit", where) or "HEAD",
        problem_statement=record["problem_statement"], test_patch=record["test_patch"],
        fail_to_pass=fail_to_pass, pass_to_pass=pass_to_pass,
        patch=_text(record, "patch", where), install=_text(record, "install", where),
        test_cmd=_text(record, "test_cmd", where), hints_text=_text(record, "hints_text", where) or "",
        repo_name=str(record["repo"]),
    )


def load_jsonl(path: str | Path, repos: str | os.PathLike | None = None,
               allow_paths: str | os.PathLike | list | None = None) -> list[SWEInstance]:
    """All instances of a JSONL file (one JSON object per line); errors name the file and line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise EnvError(f"SWE instances file {str(path)!r} does not exist")
    if repos is not None and not Path(repos).expanduser().is_dir():
        raise EnvError(f"repositories directory {str(repos)!r} does not exist")
    instances, seen = [], set()
    with path.open(encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            if len(line) > MAX_LINE_CHARS:
                raise EnvError(f"{where}: line longer than {MAX_LINE_CHARS} characters")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EnvError(f"{where}: not valid JSON ({exc.msg})") from None
            except RecursionError:
                raise EnvError(f"{where}: not valid JSON (nested too deeply)") from None
            instance = parse_instance(record, path.parent.resolve(), where, repos, allow_paths)
            if instance.instance_id in seen:
                raise EnvError(f"{where}: duplicate instance_id {instance.instance_id!r}")
            seen.add(instance.instance_id)
            instances.append(instance)
    if not instances:
        raise EnvError(f"SWE instances file {str(path)!r} has no instances")
    return instances
