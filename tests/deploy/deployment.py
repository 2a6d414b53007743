"""Copies of the project for tests that run Chalice's own commands, so neither
`.chalice/config.json` nor the stage files of the working tree are touched."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IGNORED = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".ci",
    "tests",
    "bench",
    "samples",
    "out",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    "*.egg-info",
    "deployments",
    "deployed",
    "stacks",
    "report.json",
    "requests.jsonl",
)


def project_copy(target: Path) -> Path:
    """app.py, chalicelib/, downstream/ (and the vendor/downstream link to it), callqueue/,
    requirements and .chalice/, without any stage's deployment records or stack values."""
    shutil.copytree(REPO, target, symlinks=True, ignore=IGNORED)
    return target


def fresh_clone(target: Path) -> Path:
    """What a clone of the working tree holds: the files git tracks (as they are now), and
    nothing it ignores or does not know."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source, copy = REPO / name, target / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree, not yet committed
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            copy.symlink_to(source.readlink())
        else:
            shutil.copy2(source, copy)
    return target
