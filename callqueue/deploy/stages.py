"""A new stage in `.chalice/config.json`, complete: its own Twilio credentials choice, X-Ray
setting, `autogen_policy: false` and one IAM policy per function (`.chalice/policies/STAGE/`,
callqueue.deploy.stage_policies), as `dev` and `prod` have.

config.json is written in its own layout (two-space JSON, one line per function), so adding a
stage changes only the lines of that stage.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from callqueue.deploy.stage_policies import write_stage_policies
from callqueue.project import PROJECT_DIR
from chalicelib.errors import CallqueueError

# A stage names its stack (callqueue-STAGE), its functions and its buckets: CloudFormation's
# and S3's characters, short enough for the names derived from it.
STAGE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
# Stages a new one is made like: test credentials without X-Ray, or live ones with it.
MODEL = {False: "dev", True: "prod"}


class StageError(CallqueueError):
    """A stage name that cannot be used, or one that exists."""


def config_path(project_dir: Path = PROJECT_DIR) -> Path:
    return project_dir / ".chalice" / "config.json"


def add_stage(name: str, *, live: bool = False, project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    """Add the stage `name` to config.json, made like `prod` (`live`) or `dev`; returns it."""
    if not STAGE_NAME.match(name) or name == "local":
        raise StageError(
            f"stage name {name!r}: lower-case letters, digits and '-', starting with a letter, "
            "at most 20 characters ('local' is the local runtime's)"
        )
    path = config_path(project_dir)
    config = json.loads(path.read_text())
    stages = config.setdefault("stages", {})
    if name in stages:
        raise StageError(f"stage {name!r} exists in {path}")
    stage = copy.deepcopy(stages[MODEL[live]])
    stage["environment_variables"]["CALLQUEUE_STAGE"] = name
    stage["environment_variables"]["TWILIO_CREDENTIALS"] = "live" if live else "test"
    for function, settings in stage["lambda_functions"].items():
        settings["iam_policy_file"] = f"policies/{name}/{function}.json"
    stages[name] = stage
    write_stage_policies(name, project_dir=project_dir)
    path.write_text(format_config(config))
    return dict(stage)


def format_config(config: dict[str, Any]) -> str:
    """config.json's text: two-space JSON, except that each function's settings take one line."""
    return _format(config, ()) + "\n"


def _format(node: Any, path: tuple[str, ...]) -> str:
    # stages.STAGE.lambda_functions.FUNCTION: one line.
    one_line = len(path) == 4 and path[0] == "stages" and path[2] == "lambda_functions"
    if one_line or not isinstance(node, dict) or not node:
        return json.dumps(node)
    pad = "  " * (len(path) + 1)
    items = [f"{pad}{json.dumps(k)}: {_format(v, (*path, k))}" for k, v in node.items()]
    return "{\n" + ",\n".join(items) + "\n" + "  " * len(path) + "}"
