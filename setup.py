"""The wheel carries the Chalice project inside the `callqueue` package (callqueue/_app/), so an
installed `callqueue` can plan, run and deploy it while `callqueue` is its only top-level package
(callqueue/project.py finds it). Everything else about the package is in pyproject.toml."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# What `chalice deploy` and the local runtime read from the project directory.
PROJECT_FILES = ("app.py", "requirements.txt")
PROJECT_TREES = ("chalicelib", "downstream", ".chalice")
# Per-stage output of a deployment is never shipped.
LEFT_OUT = shutil.ignore_patterns(
    "__pycache__", "*.pyc", "deployed", "deployments", "venv", "stacks"
)


class BuildWithProject(build_py):
    """build_py, then a copy of the project under callqueue/_app (not for an editable install,
    which runs the checkout itself)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "callqueue" / "_app"
        target.mkdir(parents=True, exist_ok=True)
        for name in PROJECT_FILES:
            shutil.copy2(ROOT / name, target / name)
        for name in PROJECT_TREES:
            shutil.copytree(ROOT / name, target / name, ignore=LEFT_OUT, dirs_exist_ok=True)
        # Chalice ships vendor/ as is: downstream reaches the package through vendor/downstream.
        vendor = target / "vendor"
        vendor.mkdir(exist_ok=True)
        shutil.copytree(
            ROOT / "downstream", vendor / "downstream", ignore=LEFT_OUT, dirs_exist_ok=True
        )


setup(cmdclass={"build_py": BuildWithProject})
