"""The stage policies config.json names (`.chalice/policies/STAGE/FUNCTION.json`, committed): what
Chalice's own commands read on a fresh clone, where no stack has been deployed to render the
exact ones from (docs/decisions/packaging.md).

They are rendered from the same sources as the exact policies, with each of the stack's resources
named by the pattern of the name CloudFormation gives it, `STACK-LogicalId-SUFFIX` (S3: in lower
case), in any region and account. So a function still reaches only its own resources of its own
stage (but for the state machine, whose generated name may leave the stack's out); what the exact
ones add is the region, the account and the suffix.
`callqueue deploy` never uses these: it hands Chalice the exact ones (callqueue.deploy.infra).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from callqueue.deploy import infra
from callqueue.deploy.stack import OUTPUT_ENV, render_template
from callqueue.deploy.stack_outputs import stack_name
from callqueue.project import PROJECT_DIR

# A value CloudFormation generates (a suffix of letters and digits).
ANY = "*"


def stage_policy_dir(project_dir: Path, stage: str) -> Path:
    return project_dir / ".chalice" / "policies" / stage


def name_patterns(stage: str, document: dict[str, Any] | None = None) -> dict[str, str]:
    """Each output's environment variable -> the pattern of its value in any deployment of the
    stage: the resource's generated name, or its own name where the template gives one."""
    document = document or render_template()
    stack = stack_name(stage)
    parameters = {"AppName": "callqueue", "Stage": stage}
    patterns = {}
    for key, env in OUTPUT_ENV.items():
        value = document["Outputs"][key]["Value"]
        logical = value["Ref"] if "Ref" in value else value["Fn::GetAtt"][0]
        if logical in document.get("Parameters", {}):  # the secret's name: given, not generated
            patterns[env] = document["Parameters"][logical]["Default"]
            continue
        resource = document["Resources"][logical]
        own = resource.get("Properties", {}).get("Name")
        if isinstance(own, dict) and "Fn::Sub" in own:
            patterns[env] = _substitute(own["Fn::Sub"], parameters)
        elif resource["Type"] == "AWS::StepFunctions::StateMachine":
            # Step Functions' generated names may leave the stack's name out: either form.
            patterns[env] = f"{ANY}{logical}-{ANY}"
        elif resource["Type"] == "AWS::S3::Bucket":
            patterns[env] = f"{stack}-{logical.lower()}-{ANY}"
        else:
            patterns[env] = f"{stack}-{logical}-{ANY}"
    arn = "arn:aws:{service}:*:*:{name}"
    for env in ("RESPONSE_TOPIC_ARN", "ALERT_TOPIC_ARN"):
        patterns[env] = arn.format(service="sns", name=patterns[env])
    patterns["STATE_MACHINE_ARN"] = arn.format(
        service="states", name=f"stateMachine:{patterns['STATE_MACHINE_ARN']}"
    )
    return patterns


def _substitute(text: str, parameters: dict[str, str]) -> str:
    for name, value in parameters.items():
        text = text.replace(f"${{{name}}}", value)
    return text


def pattern_values(stage: str) -> dict[str, str]:
    """The placeholders of `.chalice/policies/*.json` as patterns (infra.policy_values' keys)."""
    patterns = name_patterns(stage)
    location = infra.Location("aws", ANY, ANY)
    # Secrets Manager adds "-" and six characters to a secret's name in its ARN.
    secret = f"arn:aws:secretsmanager:*:*:secret:{patterns['TWILIO_SECRET_ID']}-??????"
    return infra.policy_values(patterns, location, stage, secret)


def write_stage_policies(stage: str, *, project_dir: Path = PROJECT_DIR) -> list[Path]:
    """Render the stage's committed policies (`callqueue stage add`, and after a source changes:
    tests/deploy/test_policies.py says when)."""
    out = stage_policy_dir(project_dir, stage)
    return infra.render_policies(project_dir, stage, pattern_values(stage), out=out)
