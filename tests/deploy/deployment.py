"""A deployable copy of the project for tests that run Chalice's own commands, so neither
`.chalice/config.json` nor the rendered policies of the working tree are touched."""

from __future__ import annotations

import shutil
from pathlib import Path

from callqueue.deploy import infra
from callqueue.deploy.stack import OUTPUT_ENV

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
    """app.py, chalicelib/, downstream/ (and the vendor/downstream link to it), requirements and
    .chalice/, without any stage's rendered policies or deployment records."""
    shutil.copytree(REPO, target, symlinks=True, ignore=IGNORED)
    for stage_dir in (target / ".chalice" / "policies").iterdir():
        if stage_dir.is_dir():
            shutil.rmtree(stage_dir)
    return target


def render_example_policies(project: Path, stage: str) -> None:
    """The stage's policies rendered for an example stack (account 123456789012), for commands
    such as `chalice package` that read them but deploy nothing."""
    env = {name: f"callqueue-{stage}-{name.lower()}" for name in OUTPUT_ENV.values()}
    env["RESPONSE_TOPIC_ARN"] = f"arn:aws:sns:us-east-1:123456789012:callqueue-{stage}-responses"
    env["ALERT_TOPIC_ARN"] = f"arn:aws:sns:us-east-1:123456789012:callqueue-{stage}-alerts"
    env["STATE_MACHINE_ARN"] = (
        f"arn:aws:states:us-east-1:123456789012:stateMachine:callqueue-{stage}-release"
    )
    secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:callqueue/twilio-AbCdEf"
    location = infra.Location("aws", "us-east-1", "123456789012")
    infra.render_policies(project, stage, infra.policy_values(env, location, stage, secret))
