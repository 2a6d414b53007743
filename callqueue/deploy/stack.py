"""The infrastructure stack: renders .chalice/infrastructure.yaml, deploys it with CloudFormation.

The same function deploys to AWS and, locally, into moto (moto_stack), so the local resources are
the deployed ones and not a second hand-written list. Stack outputs become the handlers'
environment variables.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from callqueue.project import PROJECT_DIR
from chalicelib.errors import CallqueueError

TEMPLATE = PROJECT_DIR / ".chalice" / "infrastructure.yaml"
STATE_MACHINE = PROJECT_DIR / ".chalice" / "state-machine.json"
PLACEHOLDER = "@@STATE_MACHINE_DEFINITION@@"

# Stack output -> environment variable read by chalicelib.config.
OUTPUT_ENV = {
    "SourceBucket": "SOURCE_BUCKET",
    "HoldingBucket": "HOLDING_BUCKET",
    "ProcessBucket": "PROCESS_BUCKET",
    "ReportsBucket": "REPORTS_BUCKET",
    "SendQueue": "SEND_QUEUE",
    "DeadLetterQueue": "DEAD_LETTER_QUEUE",
    "ResponseTopicArn": "RESPONSE_TOPIC_ARN",
    "JobsTable": "JOBS_TABLE",
    "StateMachineArn": "STATE_MACHINE_ARN",
    "ArchiveBucket": "ARCHIVE_BUCKET",
    "ResultsTable": "RESULTS_TABLE",
    "SuppressionTable": "SUPPRESSION_TABLE",
    "RateLimitTable": "RATE_LIMIT_TABLE",
    "ArchiveQueue": "ARCHIVE_QUEUE",
    "ResultsQueue": "RESULTS_QUEUE",
    "RouterQueue": "ROUTER_QUEUE",
    "SuppressionQueue": "SUPPRESSION_QUEUE",
    "SystemicQueue": "SYSTEMIC_QUEUE",
    "SinkDeadLetterQueue": "SINK_DEAD_LETTER_QUEUE",
    "ErrorBusName": "ERROR_BUS",
    "AlertTopicArn": "ALERT_TOPIC_ARN",
    "TwilioSecretName": "TWILIO_SECRET_ID",
}


class StackError(CallqueueError):
    """The stack could not be created or updated."""


def render_template(
    template: Path = TEMPLATE, state_machine: Path = STATE_MACHINE
) -> dict[str, Any]:
    """The template with the state machine definition inlined (CloudFormation cannot read files)."""
    document: dict[str, Any] = yaml.safe_load(template.read_text())
    definition = json.dumps(json.loads(state_machine.read_text()), indent=2)
    properties = document["Resources"]["ReleaseStateMachine"]["Properties"]
    sub = properties["DefinitionString"]["Fn::Sub"]
    if sub[0] != PLACEHOLDER:
        raise StackError("ReleaseStateMachine.DefinitionString lost its placeholder")
    sub[0] = definition
    return document


def deploy_stack(
    cloudformation: Any,
    stack_name: str,
    parameters: Mapping[str, str],
    *,
    document: Mapping[str, Any] | None = None,
    timeout: float = 600.0,
    poll: float = 2.0,
) -> dict[str, str]:
    """Create the stack (or update it) and return its outputs as environment variables.

    `document`: the template to deploy (default: `render_template()`; moto_stack gives moto's).
    """
    body = json.dumps(document if document is not None else render_template())
    params = [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]
    _create_or_update(cloudformation, stack_name, body, params)
    stack = _wait_until_deployed(cloudformation, stack_name, timeout=timeout, poll=poll)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return {env: outputs[key] for key, env in OUTPUT_ENV.items()}


def _create_or_update(
    cloudformation: Any, stack_name: str, body: str, params: list[dict[str, str]]
) -> None:
    request = {
        "StackName": stack_name,
        "TemplateBody": body,
        "Parameters": params,
        "Capabilities": ["CAPABILITY_IAM"],
    }
    try:
        cloudformation.describe_stacks(StackName=stack_name)
    except cloudformation.exceptions.ClientError:
        cloudformation.create_stack(**request)
        return
    try:
        cloudformation.update_stack(**request)
    except cloudformation.exceptions.ClientError as error:
        if "No updates are to be performed" not in str(error):
            raise


def _wait_until_deployed(
    cloudformation: Any, stack_name: str, *, timeout: float, poll: float
) -> dict[str, Any]:
    """The stack once created or updated; StackError, with the failed resources' reasons, if it
    failed or rolled back, or is still in progress after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        stack: dict[str, Any] = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        status = stack["StackStatus"]
        if status.endswith("_COMPLETE") and "ROLLBACK" not in status:
            return stack
        if status.endswith(("_FAILED", "ROLLBACK_COMPLETE")):
            reasons = failure_reasons(cloudformation, stack_name)
            hint = (
                "; delete it (`callqueue infra destroy`) before deploying again"
                if status == "ROLLBACK_COMPLETE"
                else ""
            )
            raise StackError(
                f"stack {stack_name}: {status} {stack.get('StackStatusReason', '')}{hint}"
                + "".join(f"\n  {reason}" for reason in reasons)
            )
        if time.monotonic() > deadline:
            raise StackError(f"stack {stack_name}: still {status} after {timeout:.0f} s")
        time.sleep(poll)


def failure_reasons(cloudformation: Any, stack_name: str, *, limit: int = 10) -> list[str]:
    """The latest failed resources of a stack and why, newest first (what a deploy prints)."""
    events = cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]
    return [
        f"{e['LogicalResourceId']} ({e['ResourceType']}): {e.get('ResourceStatusReason', '')}"
        for e in events
        if e["ResourceStatus"].endswith("_FAILED")
    ][:limit]
