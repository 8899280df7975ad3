"""The project's own modules, for the tests that read the source (the layer contract, the settings rule)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Not modules of the package: tests, examples (users' scripts), docs, build output, the SWE fixture repos.
SKIP_PARTS = {".venv", ".git", "build", "tests", "examples", "docs", "scripts", "__pycache__", "fixtures",
              "seasoned.egg-info"}
SKIP_FILES = {ROOT / "setup.py"}


def source_files() -> list[Path]:
    """Every ``.py`` file of the package, sorted."""
    return sorted(path for path in ROOT.rglob("*.py")
                  if path not in SKIP_FILES and not SKIP_PARTS & set(path.relative_to(ROOT).parts))


def module_name(path: Path) -> str:
    """``<root>/memory/db.py`` -> ``seasoned.memory.db``; ``<root>/envs/__init__.py`` -> ``seasoned.envs``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["seasoned", *parts])
