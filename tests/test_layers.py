"""The import contract of the house (docs: DESIGN "Layout"): imports flow one way.

``settings``/``errors`` below everything; ``models`` on them only; ``memory`` and ``runs`` on ``models``;
``tools`` and ``envs`` on nothing above them (never on ``agents``, ``memory`` or ``graphs``); ``agents`` on
``models`` and what they act with (``tools``, ``envs``); ``graphs`` on ``agents``, ``memory``, ``runs``,
``envs``, ``tools``; ``server``, ``cli``, ``benchmarks`` (and the demo) on top. ``EXCEPTIONS`` names the
few single modules a layer may import besides, with the reason. Every import counts:
module level, inside functions, under ``TYPE_CHECKING``, relative or absolute. A new top-level module or
package fails the test until it is given its place here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from source_tree import ROOT, module_name, source_files

BASE = frozenset({"errors", "settings"})
ALLOWED: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "settings": frozenset({"errors"}),
    "models": BASE,
    "memory": BASE | {"models"},
    "runs": BASE | {"models"},
    "tools": BASE | {"models"},
    "envs": BASE | {"models", "tools"},
    "agents": BASE | {"models", "tools", "envs"},
    "graphs": BASE | {"models", "tools", "envs", "agents", "memory", "runs"},
}
_LIBRARY = frozenset(ALLOWED)
ALLOWED |= {
    "server": _LIBRARY,
    "demo": _LIBRARY | {"benchmarks"},
    "benchmarks": _LIBRARY | {"server"},
    "cli": _LIBRARY | {"server", "benchmarks", "demo"},
}
# Single modules a layer may import besides its allowed layers, each with its reason.
EXCEPTIONS: dict[str, dict[str, str]] = {
    "runs": {"seasoned.memory.db": "runs live in the memory database: its Database, retry_locked and add_to_counters"},
}


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """``(line, module)`` for every ``seasoned`` module ``source`` imports, anywhere in the file."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from seasoned import memory`` imports the layer ``memory``
            found += ([(node.lineno, f"{target}.{alias.name}") for alias in node.names] if target == "seasoned"
                      else [(node.lineno, target)])
    return [(line, name) for line, name in found if name.startswith("seasoned.")]


def layer(module: str) -> str:
    """``seasoned.memory.db`` -> ``memory``; ``seasoned.cli`` -> ``cli``."""
    return module.split(".")[1]


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """What in ``source`` breaks the contract, one line each (empty when it keeps it)."""
    own = layer(module)
    if own not in ALLOWED:
        return [f"{module}: the layer {own!r} has no place in the import contract (tests/test_layers.py)"]
    return [f"{module}:{line} imports {name} ({own} may import {sorted(ALLOWED[own]) or 'nothing of seasoned'})"
            for line, name in imported_modules(source, module, is_package)
            if layer(name) != own and layer(name) not in ALLOWED[own] and name not in EXCEPTIONS.get(own, {})]


def test_every_module_keeps_the_import_contract():
    files = source_files()
    assert len(files) > 50 and (ROOT / "settings.py") in files
    broken = [problem for path in files
              for problem in violations(path.read_text(), module_name(path), path.name == "__init__.py")]
    assert not broken, "imports against the layer rule:\n" + "\n".join(broken)


@pytest.mark.parametrize(("module", "source"), [
    ("seasoned.envs.cli", "def f():\n    from seasoned.agents.actor import run_actor\n"),
    ("seasoned.envs.swe.env", "from ...agents import actor\n"),
    ("seasoned.tools.files", "import seasoned.memory.bank\n"),
    ("seasoned.models.gateway", "from seasoned import graphs\n"),
    ("seasoned.memory.bank", "if TYPE_CHECKING:\n    from seasoned.graphs.agent import Agent\n"),
    ("seasoned.settings", "from seasoned.models import default_model\n"),
    ("seasoned.newlayer.x", "import json\n"),
    ("seasoned.runs.store", "from seasoned.memory.bank import MemoryBank\n"),
])
def test_the_checker_finds_a_violation(module, source):
    assert len(violations(source, module)) == 1


@pytest.mark.parametrize(("module", "source"), [
    ("seasoned.envs.swe.env", "from ..base import Environment\nfrom ..answers import code_blocks\n"),
    ("seasoned.graphs.agent", "from seasoned.agents import actor\nfrom seasoned.runs.store import RunStore\n"),
    ("seasoned.models.local", "from . import scripted\nfrom seasoned.errors import ModelConfigError\n"),
    ("seasoned.cli.main", "from seasoned.server.runner import serve\nfrom .views import show\n"),
    ("seasoned.memory", "from .bank import MemoryBank\nimport json, os\n"),
    ("seasoned.runs.store", "from seasoned.memory.db import Database\n"),
])
def test_the_checker_accepts_allowed_imports(module, source):
    assert violations(source, module, is_package=module.count(".") == 1) == []


def test_relative_imports_resolve_against_the_package():
    assert imported_modules("from ..base import Task", "seasoned.envs.swe.env", False) == [(1, "seasoned.envs.base")]
    assert imported_modules("from . import bank", "seasoned.memory", True) == [(1, "seasoned.memory")]
    assert imported_modules("from .. import errors", "seasoned.tools.files", False) == [(1, "seasoned.errors")]


def test_source_files_are_the_package(tmp_path: Path):
    names = {module_name(path) for path in source_files()}
    assert {"seasoned.settings", "seasoned.errors", "seasoned.models.gateway", "seasoned.envs"} <= names
    assert not any(".tests." in name or ".fixtures." in name or ".examples." in name for name in names)
