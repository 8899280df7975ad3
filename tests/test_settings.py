"""One settings module: every ``SEASONED_*`` variable is read by ``seasoned.settings`` and documented in the
README; no other module reads one from the environment."""

from __future__ import annotations

import ast
import re

import pytest
from seasoned.errors import SettingsError
from seasoned.settings import DEFAULT_MODEL, Settings, default_db_url, env_name, seasoned_home, settings
from source_tree import ROOT, source_files

_NAME = re.compile(r"SEASONED_[A-Z0-9_]*[A-Z0-9]")


def readme_settings_table() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in section.splitlines() if line.startswith("|"))


def environment_reads(source: str) -> list[tuple[int, str]]:
    """``(line, name)`` for each ``SEASONED_*`` variable the code reads from the environment: ``os.environ[..]``,
    ``os.environ.get(..)``, ``os.getenv(..)``, ``.. in os.environ``, by literal or module-level constant.
    Writes (``os.environ[NAME] = ..``, a child process's env dict) are not reads."""
    tree = ast.parse(source)
    constants = {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
                 and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                 for target in node.targets if isinstance(target, ast.Name)}

    def name_of(key: ast.AST | None) -> str | None:
        value = key.value if isinstance(key, ast.Constant) else constants.get(getattr(key, "id", None))
        return value if isinstance(value, str) and _NAME.fullmatch(value) else None

    def is_environ(node: ast.AST) -> bool:
        return getattr(node, "attr", getattr(node, "id", None)) == "environ"

    found = []
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Call) and node.args and isinstance(node.func, ast.Attribute):
            if node.func.attr == "getenv" or (node.func.attr == "get" and is_environ(node.func.value)):
                key = node.args[0]
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and is_environ(node.value):
            key = node.slice
        elif isinstance(node, ast.Compare) and any(is_environ(c) for c in node.comparators):
            key = node.left
        if name_of(key):
            found.append((node.lineno, name_of(key)))
    return found


def test_every_setting_is_documented_in_the_readme():
    table = readme_settings_table()
    missing = [env_name(field) for field in Settings.model_fields if f"`{env_name(field)}`" not in table]
    assert not missing, f"add to the README's Settings table: {missing}"


def test_every_seasoned_variable_named_in_the_code_is_documented():
    table = readme_settings_table()
    named = {name for path in source_files() for name in _NAME.findall(path.read_text())}
    assert {"SEASONED_HOME", "SEASONED_EMBED_MODEL", "SEASONED_CHROMIUM", "SEASONED_SANDBOX_ROOTS"} <= named
    assert not sorted(name for name in named if f"`{name}`" not in table)


def test_only_the_settings_module_reads_seasoned_variables():
    reads = [f"{path.relative_to(ROOT)}:{line} reads {name}" for path in source_files()
             if path != ROOT / "settings.py" for line, name in environment_reads(path.read_text())]
    assert not reads, "read these through seasoned.settings.settings():\n" + "\n".join(reads)


@pytest.mark.parametrize("source", [
    'import os\nx = os.environ.get("SEASONED_HOME") or "~"\n',
    'import os\ndef f():\n    return os.getenv("SEASONED_MODEL", "m")\n',
    'import os\nKEY = "SEASONED_DB_URL"\nurl = os.environ[KEY]\n',
    'from os import environ\nif "SEASONED_CHROMIUM" in environ:\n    pass\n',
])
def test_the_read_finder_finds_a_read(source):
    assert len(environment_reads(source)) == 1


@pytest.mark.parametrize("source", [
    'import os\nos.environ["SEASONED_HOME"] = "/tmp/h"\n',
    'env = {}\nenv["SEASONED_SANDBOX_ROOTS"] = "/w"\n',
    'import os\nx = os.environ.get("HF_HUB_OFFLINE")\nmessage = "set SEASONED_DB_URL"\n',
])
def test_the_read_finder_ignores_writes_and_other_names(source):
    assert environment_reads(source) == []


def test_settings_are_read_afresh_and_empty_means_unset(monkeypatch, tmp_path):
    monkeypatch.setenv("SEASONED_MODEL", "scripted/one")
    assert settings().model == "scripted/one"
    monkeypatch.setenv("SEASONED_MODEL", "")
    assert settings().model == DEFAULT_MODEL
    monkeypatch.setenv("SEASONED_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SEASONED_DB_URL", raising=False)
    assert seasoned_home() == tmp_path / "home" and (tmp_path / "home").is_dir()
    assert default_db_url() == f"sqlite:///{tmp_path / 'home' / 'memory.db'}"
    monkeypatch.setenv("SEASONED_DB_URL", "sqlite:///elsewhere.db")
    assert default_db_url() == "sqlite:///elsewhere.db"


def test_a_bad_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("SEASONED_LOCAL_N_CTX", "lots")
    with pytest.raises(SettingsError, match=r"^SEASONED_LOCAL_N_CTX: .*'lots'"):
        settings()
