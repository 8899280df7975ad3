"""The places one attempt owns: a temp directory holding the checkout, an own Python venv, report files,
and a watcher that removes it all if this process dies before it can clean up.

The venv's ``python`` and ``pip`` are its own: ``pip install -e . pytest`` installs there and nowhere
else. It starts with only pip, setuptools, wheel and pytest (with their dependencies) visible, linked
from this interpreter's site-packages through a ``.pth`` file, so common installs need no download and
the repository under test does not see seasoned's own dependencies. pip keeps its download and wheel
cache in ``SEASONED_HOME/cache/pip``, shared by attempts, so a second install takes seconds."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import venv as venv_module
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from seasoned.settings import settings

SEED = ("pip", "setuptools", "wheel", "pytest")
_PIP_SCRIPT = """#!{python}
import sys
from pip._internal.cli.main import main
sys.exit(main())
"""


def home() -> Path:
    return settings().home


def pip_cache() -> Path:
    path = home() / "cache" / "pip"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _requirement_names(dist: metadata.Distribution) -> list[str]:
    """Names of the dependencies ``dist`` needs here (extras and other platforms left out)."""
    from packaging.requirements import InvalidRequirement, Requirement

    names = []
    for text in dist.requires or []:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            names.append(req.name)
    return names


def seed_entries(names: tuple[str, ...] = SEED) -> list[Path]:
    """Top-level site-packages entries (packages, modules, ``.dist-info``) of ``names`` and their dependencies."""
    entries: dict[Path, None] = {}
    todo, seen = list(names), set()
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        site = Path(str(dist.locate_file(""))).resolve()
        for file in dist.files or []:
            top = file.parts[0] if file.parts else ""
            if top in ("", "..", "__pycache__") or top.endswith(".pth"):
                continue
            path = site / top
            if path.exists():
                entries.setdefault(path)
        todo += _requirement_names(dist)
    return list(entries)


def make_venv(venv: Path, seed: Path) -> Path:
    """A venv at ``venv`` whose site-packages also sees the links in ``seed``; returns its python."""
    seed.mkdir(parents=True, exist_ok=True)
    for entry in seed_entries():
        link = seed / entry.name
        if not link.exists():
            link.symlink_to(entry, target_is_directory=entry.is_dir())
    has_pip = (seed / "pip").exists()
    venv_module.EnvBuilder(with_pip=not has_pip, symlinks=True).create(venv)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_dir = venv / "lib" / version / "site-packages"
    site_dir.mkdir(parents=True, exist_ok=True)
    # Read after every other .pth file: an editable install of a package that is also in the seed
    # (the repository of pytest, packaging, pluggy...) comes first on sys.path.
    (site_dir / "zz-seasoned-seed.pth").write_text(f"{seed}\n")
    python = venv / "bin" / "python"
    if has_pip:
        for name in ("pip", "pip3", f"pip{sys.version_info.major}.{sys.version_info.minor}"):
            script = venv / "bin" / name
            script.write_text(_PIP_SCRIPT.format(python=python))
            script.chmod(0o755)
    return python


def install_env(venv: Path, cache: Path | None) -> dict[str, str]:
    """Environment for commands using the venv (``cache``: pip's shared cache, else none)."""
    env = {"PATH": f"{venv / 'bin'}{os.pathsep}/usr/local/bin:/usr/bin:/bin", "VIRTUAL_ENV": str(venv),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", "PIP_PROGRESS_BAR": "off",
           "PIP_ROOT_USER_ACTION": "ignore"}
    if cache is not None:
        env["PIP_CACHE_DIR"] = str(cache)
    else:
        env["PIP_NO_CACHE_DIR"] = "1"
    return env


@dataclass
class Attempt:
    """The temp directory of one attempt and the watcher that removes it if this process dies."""

    root: Path
    watcher: subprocess.Popen | None

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def seed(self) -> Path:
        return self.root / "seed"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def git_dir(self) -> Path:
        """A private copy of the checkout's ``.git``, made before anyone acts in the tree."""
        return self.root / "base.git"

    @classmethod
    def create(cls) -> Attempt:
        root = Path(tempfile.mkdtemp(prefix="seasoned-swe-")).resolve()
        (root / "reports").mkdir()
        return cls(root, _watch(root))

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        if self.watcher is not None:
            try:
                self.watcher.stdin.close()
                self.watcher.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self.watcher = None


def _watch(root: Path) -> subprocess.Popen | None:
    """A tiny process that waits for this one to die (its stdin pipe closes), then removes ``root``."""
    try:
        return subprocess.Popen(["/bin/sh", "-c", 'cat >/dev/null; rm -rf -- "$1"', "seasoned-swe-reaper",
                                 str(root)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError:
        return None
