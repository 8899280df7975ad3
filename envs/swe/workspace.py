"""The places one attempt owns: a temp directory holding the checkout, an own Python venv, report files,
and a watcher that removes it all if this process dies before it can clean up. Where it can (root, a loop
device), the directory is a filesystem of its own capped at ``SWEEnv(disk_mb=...)`` (``tools.diskcap``).

The venv is made from the base interpreter, and its ``python`` and ``pip`` are its own: ``pip install -e .
pytest`` installs there and nowhere else. Its commands never see this product's venv nor the base
interpreter's site-packages, nor the system's Python packages (``Sandbox(base_python=True)``). It starts
with a seed visible through a ``.pth`` file so that common installs need no download: copies of pip,
setuptools, wheel and pytest (with their dependencies). Each seeded distribution is a read-only copy under
``SEASONED_HOME/cache/swe-seed``, shared by attempts; one that holds a module named after the instance's
project (``more_itertools`` vendored by setuptools, for a more-itertools instance; ``requests`` vendored by
pip for a requests one) is left out for it, so a newer copy of the code under test is not there to read;
pip then is visible to the install step only.

pip's cache is per instance (``SEASONED_HOME/cache/pip/<digest>``, keyed by the JSONL file, instance id,
repository and install command): a second attempt at an instance installs from it, and one instance's
install never reads what another one's left there."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import venv as venv_module
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from seasoned.settings import settings
from seasoned.tools import diskcap
from seasoned.tools.diskcap import CappedDir

SEED = ("pip", "setuptools", "wheel", "pytest")  # visible to every command of an attempt
INSTALL_SEED = ("pip",)  # always visible to the install step, even when the project's rule left it out
_PIP_SCRIPT = """#!{python}
import sys
from pip._internal.cli.main import main
sys.exit(main())
"""


def home() -> Path:
    return settings().home


def pip_cache(*key: str) -> Path:
    """pip's cache for the instance identified by ``key`` (never shared with another instance)."""
    digest = hashlib.sha256("\0".join(key).encode("utf-8", "surrogateescape")).hexdigest()[:24]
    path = home() / "cache" / "pip" / digest
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


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def seed_distributions(names: tuple[str, ...]) -> list[metadata.Distribution]:
    """``names`` and their dependencies, as installed for this interpreter."""
    found, todo, seen = [], list(names), set()
    while todo:
        name = _normalize(todo.pop(0))
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(dist)
        todo += _requirement_names(dist)
    return found


def _top_entries(dist: metadata.Distribution) -> list[Path]:
    """Top-level site-packages entries of ``dist`` (packages, modules, its ``.dist-info``)."""
    site = Path(str(dist.locate_file(""))).resolve()
    entries: dict[Path, None] = {}
    for file in dist.files or []:
        top = file.parts[0] if file.parts else ""
        if top in ("", "..", "__pycache__") or top.endswith(".pth"):
            continue
        if (site / top).exists():
            entries.setdefault(site / top)
    return list(entries)


def seed_copy(dist: metadata.Distribution) -> Path:
    """A read-only copy of ``dist``'s files under ``SEASONED_HOME/cache/swe-seed`` (made once, atomically)."""
    version = f"py{sys.version_info.major}{sys.version_info.minor}"
    target = home() / "cache" / "swe-seed" / version / f"{_normalize(dist.metadata['Name'])}-{dist.version}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    try:
        for entry in _top_entries(dist):
            if entry.is_dir():
                shutil.copytree(entry, staging / entry.name, symlinks=True,
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(entry, staging / entry.name, follow_symlinks=False)
        os.chmod(staging, 0o755)
        try:
            os.replace(staging, target)
        except OSError:  # another process made it at the same time
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@functools.lru_cache(maxsize=256)
def holds_module(directory: Path, module: str, limit: int = 100_000) -> bool:
    """Is there a package or module named ``module`` anywhere below ``directory`` (vendored copies too)?"""
    seen = 0
    for _, dirs, files in os.walk(directory):
        seen += len(dirs) + len(files)
        if module in dirs or f"{module}.py" in files or seen > limit:
            return True
    return False


def project_module(repo_name: str) -> str:
    """The module name a repository's project most likely has (``more-itertools/more-itertools`` ->
    ``more_itertools``; a path -> its last component)."""
    return _normalize(Path(repo_name.rstrip("/")).name.removesuffix(".bundle").removesuffix(".git"))


def seed_dirs(names: tuple[str, ...], project: str) -> list[Path]:
    """Copies of ``names`` (and dependencies) for an instance of ``project``, minus any that holds a
    module named like the project."""
    copies = [seed_copy(dist) for dist in seed_distributions(names)]
    return [path for path in copies if not project or not holds_module(path, project)]


def make_venv(venv: Path, seeds: list[Path]) -> Path:
    """A venv at ``venv`` made from the base interpreter whose site-packages also sees ``seeds``; returns
    its python."""
    venv_module.EnvBuilder(with_pip=False, symlinks=True).create(venv)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_dir = venv / "lib" / version / "site-packages"
    site_dir.mkdir(parents=True, exist_ok=True)
    # Read after every other .pth file: an editable install of a package that is also in the seed
    # (the repository of pytest, packaging, pluggy...) comes first on sys.path.
    (site_dir / "zz-seasoned-seed.pth").write_text("".join(f"{path}\n" for path in seeds))
    python = venv / "bin" / "python"
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
    capped: CappedDir | None = None  # the size-capped filesystem holding ``root``, where one can be made
    seeds: list[Path] = field(default_factory=list)  # read-only in every command of the attempt
    install_seeds: list[Path] = field(default_factory=list)  # and these in its install step

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def git_dir(self) -> Path:
        """A private copy of the checkout's ``.git``, made before anyone acts in the tree."""
        return self.root / "base.git"

    @classmethod
    def create(cls, disk_mb: int | None = None) -> Attempt:
        """A new attempt directory: on a filesystem of ``disk_mb`` where capped directories work here
        (``tools.diskcap``: everything the attempt's commands write counts), else an ordinary one."""
        if disk_mb and diskcap.available():
            capped = CappedDir.create(disk_mb, prefix="seasoned-swe-")
            (capped.path / "reports").mkdir()
            return cls(capped.path, None, capped)
        root = Path(tempfile.mkdtemp(prefix="seasoned-swe-")).resolve()
        (root / "reports").mkdir()
        return cls(root, _watch(root))

    def remove(self) -> None:
        if self.capped is not None:
            self.capped.remove()
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
