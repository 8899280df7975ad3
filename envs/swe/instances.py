"""SWE-bench instances: loading JSONL files with SWE-bench's field names, checking them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..base import EnvError

REQUIRED = ("instance_id", "repo", "problem_statement", "test_patch", "FAIL_TO_PASS")


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


def _test_list(value, field_name: str, where: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise EnvError(f"{where}: {field_name} must be a JSON list of test ids, got {value[:80]!r}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise EnvError(f"{where}: {field_name} must be a list of test id strings")
    return value


def parse_instance(record: dict, base_dir: Path, where: str) -> SWEInstance:
    """One JSON record -> ``SWEInstance``; ``repo`` may be relative to the JSONL file's directory."""
    if not isinstance(record, dict):
        raise EnvError(f"{where}: expected a JSON object")
    missing = [k for k in REQUIRED if not record.get(k)]
    if missing:
        raise EnvError(f"{where}: missing field(s) {', '.join(missing)}")
    repo = Path(str(record["repo"])).expanduser()
    if not repo.is_absolute():
        repo = (base_dir / repo).resolve()
    if not repo.exists():
        raise EnvError(f"{where}: repository {str(record['repo'])!r} not found (looked at {repo}); give a local "
                       f"directory or a git bundle file")
    if repo.is_file() and repo.suffix != ".bundle":
        raise EnvError(f"{where}: repository {str(repo)!r} is a file but not a git bundle (*.bundle)")
    return SWEInstance(
        instance_id=str(record["instance_id"]), repo=repo, base_commit=str(record.get("base_commit") or "HEAD"),
        problem_statement=record["problem_statement"], test_patch=record["test_patch"],
        fail_to_pass=_test_list(record.get("FAIL_TO_PASS"), "FAIL_TO_PASS", where),
        pass_to_pass=_test_list(record.get("PASS_TO_PASS"), "PASS_TO_PASS", where),
        patch=record.get("patch") or None, install=record.get("install") or None,
        test_cmd=record.get("test_cmd") or None, hints_text=record.get("hints_text") or "",
    )


def load_jsonl(path: str | Path) -> list[SWEInstance]:
    """All instances of a JSONL file (one JSON object per line); errors name the file and line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise EnvError(f"SWE instances file {str(path)!r} does not exist")
    instances, seen = [], set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EnvError(f"{where}: not valid JSON ({exc.msg})") from None
        instance = parse_instance(record, path.parent, where)
        if instance.instance_id in seen:
            raise EnvError(f"{where}: duplicate instance_id {instance.instance_id!r}")
        seen.add(instance.instance_id)
        instances.append(instance)
    if not instances:
        raise EnvError(f"SWE instances file {str(path)!r} has no instances")
    return instances
