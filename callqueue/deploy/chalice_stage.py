"""Chalice's own commands, given the deployed stack's values without writing them into the
tracked `.chalice/config.json`.

A deployed stage's values (the stack's outputs as environment variables, each function's IAM
policy rendered with the stack's ARNs) are written to `.chalice/stacks/STAGE.json` and
`.chalice/stacks/STAGE/FUNCTION.json`, git-ignored. Chalice reads only config.json, so its
commands run here, in a process of their own (`python -m callqueue.deploy.chalice_stage deploy
--stage dev`), with a config loader that lays each stage file over that stage of config.json.
A process of its own because Chalice imports app.py to deploy it, and app.py reads its decorator
arguments (bucket and queue names) from the environment once, at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chalice.cli.factory import CLIFactory

from callqueue.project import PROJECT_DIR

STACKS_DIR = Path(".chalice") / "stacks"


def stage_file(project_dir: Path, stage: str) -> Path:
    return project_dir / STACKS_DIR / f"{stage}.json"


def policy_dir(project_dir: Path, stage: str) -> Path:
    return project_dir / STACKS_DIR / stage


def write_stage_file(
    project_dir: Path, stage: str, environment: Mapping[str, str], functions: Sequence[str]
) -> Path:
    """The stage's overlay: the stack's environment, and each function's rendered policy (paths
    relative to .chalice/, as Chalice reads them)."""
    overlay = {
        "environment_variables": dict(environment),
        "lambda_functions": {
            f: {"iam_policy_file": f"stacks/{stage}/{f}.json"} for f in sorted(functions)
        },
    }
    path = stage_file(project_dir, stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(overlay, indent=2, sort_keys=True) + "\n")
    return path


def overlaid(config: Mapping[str, Any], project_dir: Path) -> dict[str, Any]:
    """config.json with every stage file found laid over its stage: nested objects merged, other
    values replaced (a function keeps its timeout and memory, and gets the rendered policy)."""
    merged: dict[str, Any] = json.loads(json.dumps(config))
    stages = merged.setdefault("stages", {})
    for path in sorted((project_dir / STACKS_DIR).glob("*.json")):
        stages[path.stem] = _merge(stages.get(path.stem, {}), json.loads(path.read_text()))
    return merged


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merge(result[key], value)
        else:
            result[key] = value
    return result


class StageConfigFactory(CLIFactory):
    """Chalice's factory, reading config.json with the stage files laid over it."""

    def load_project_config(self) -> dict[str, Any]:
        return overlaid(super().load_project_config(), Path(self.project_dir))


def run(
    args: Sequence[str],
    *,
    project_dir: Path = PROJECT_DIR,
    env: Mapping[str, str] | None = None,
    capture: bool = True,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """`chalice ARGS` in the project, with the stage files (a process of its own)."""
    environment = dict(os.environ if env is None else env)
    # This package may not be installed where the project is (a copy of it, in the tests).
    source_root = str(Path(__file__).resolve().parents[2])
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in (environment.get("PYTHONPATH"), source_root) if p
    )
    return subprocess.run(  # noqa: S603 - this interpreter, no shell
        [sys.executable, "-m", "callqueue.deploy.chalice_stage", *args],
        cwd=project_dir,
        env=environment,
        capture_output=capture,
        text=True,
        timeout=timeout,
        check=False,
    )


def main(argv: Sequence[str]) -> int:
    import chalice.cli  # noqa: PLC0415 - the CLI module only in this process

    # The CLI builds its factory from this module attribute (chalice/cli/__init__.py, `cli`).
    chalice.cli.CLIFactory = StageConfigFactory  # type: ignore[attr-defined]
    sys.argv = ["chalice", *argv]
    return int(chalice.cli.main() or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
