"""The wheel a user installs holds every module and its data: built from a copy of the tree, installed
non-editable into a fresh venv (dependencies seen from this venv's site-packages, never downloaded, and
without this venv's editable install), then every module imported and the command run."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Folders that hold Python files but are not part of the package (data, tests, scripts).
NOT_SHIPPED = {"tests", "examples", "docs", "scripts", "build", "dist"}
DATA = ["seasoned/tools/isolate.sh", "seasoned/envs/fixtures/swe/instances.jsonl"]
IGNORE = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*cache",
                                ".seasoned", "bench-results")


def module_dirs() -> set[str]:
    """Every folder of the tree holding Python modules that the wheel must ship, as wheel paths."""
    found = set()
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts[:-1]
        if parts and (parts[0] in NOT_SHIPPED or parts[0].startswith(".") or "fixtures" in parts
                      or "__pycache__" in parts):
            continue
        found.add("/".join(("seasoned", *parts)))
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(ROOT, source, ignore=IGNORE)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", "-w", str(work / "dist"), str(source)], check=True, capture_output=True, text=True)
    (built,) = (work / "dist").glob("seasoned-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed; this venv's site-packages is added as a plain path (a
    ``.pth`` line), so its dependencies import but its ``.pth`` files (the editable finder) never run."""
    target = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
    python = target / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                    "-q", str(wheel)], check=True, capture_output=True, text=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "zz_parent_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return target


def run(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


def isolated_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(SEASONED_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               LITELLM_LOCAL_MODEL_COST_MAP="True", ANONYMIZED_TELEMETRY="False", PYTHONNOUSERSITE="1")
    return env


def test_wheel_ships_every_module_folder_and_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {name.rsplit("/", 1)[0] for name in names if name.endswith(".py")}
    assert module_dirs() <= shipped, f"folders missing from the wheel: {sorted(module_dirs() - shipped)}"
    assert "seasoned/envs/swe/env.py" in names
    assert not [n for n in names if n.endswith((".pyc", "seasoned/setup.py"))]
    for data in DATA:
        assert data in names, f"package data missing: {data}"


def test_installed_wheel_imports_every_module_and_runs_the_command(venv, tmp_path):
    python = venv / "bin" / "python"
    script = """
import importlib, pkgutil, sys
import seasoned
prefix = sys.argv[1]
assert all(p.startswith(prefix) for p in seasoned.__path__), f"not the wheel: {list(seasoned.__path__)}"
failed, count = [], 0
for info in pkgutil.walk_packages(seasoned.__path__, "seasoned."):
    if info.name.endswith(".__main__"):  # runs a command when imported
        continue
    try:
        module = importlib.import_module(info.name)
        count += 1
    except Exception as exc:
        failed.append(f"{info.name}: {type(exc).__name__}: {exc}")
    else:
        assert module.__file__.startswith(prefix), module.__file__
print(count)
assert not failed, failed
"""
    env = isolated_env(tmp_path)
    imported = run(str(python), "-I", "-c", script, str(venv), cwd=tmp_path, env=env)
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert int(imported.stdout.split()[-1]) >= len(module_dirs())
    command = str(venv / "bin" / "seasoned")
    version = run(command, "--version", cwd=tmp_path, env=env)
    assert version.returncode == 0 and version.stdout.startswith("seasoned 0."), version.stderr
    listed = run(command, "envs", "list", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert "swe" in listed.stdout and "arithmetic" in listed.stdout
