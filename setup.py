"""The package list, generated so it cannot drift from the tree.

The repository root *is* the package ``seasoned`` (pyproject maps it with ``package-dir``), so
setuptools' own discovery would name the folders ``agents``, ``envs.swe``, ... instead of
``seasoned.agents``, ``seasoned.envs.swe``. Here every folder with an ``__init__.py`` is found and
prefixed; tests, examples, fixtures (package data) and build output are left out. Everything else
(metadata, dependencies, package data) lives in pyproject.toml. ``tests/test_packaging.py`` builds
the wheel and checks that every folder holding Python modules made it in.
"""

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

NOT_PACKAGES = ["tests", "tests.*", "examples", "examples.*", "docs", "docs.*", "scripts", "scripts.*",
                "build", "build.*", "dist", "dist.*", "*.fixtures", "*.fixtures.*"]


def packages() -> list[str]:
    """``seasoned`` and every subpackage under the root, as import names."""
    return ["seasoned", *(f"seasoned.{name}" for name in sorted(find_packages(where=".", exclude=NOT_PACKAGES)))]


class BuildPy(build_py):
    """Leaves this file out of the wheel: at the root it would otherwise become ``seasoned.setup``."""

    def find_package_modules(self, package: str, package_dir: str) -> list[tuple[str, str, str]]:
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if not (package == "seasoned" and m[1] == "setup")]


setup(packages=packages(), cmdclass={"build_py": BuildPy})
