"""`callqueue infra`: the AWS side of a deployment, around Chalice's functions.

Chalice creates the functions, their roles and their triggers; everything else comes from the
stack of `.chalice/infrastructure.yaml`. The steps for a stage S (callqueue.deploy.sequence runs
them all: `callqueue deploy --stage S`):

1. `deploy(S)`: check that the Twilio secret exists, create or update the stack `callqueue-S`,
   and write the stage's values where Chalice's commands run by callqueue find them
   (callqueue.deploy.chalice_stage): the stack's outputs as the functions' environment, and each
   function's IAM policy (`.chalice/policies/FUNCTION.json`) rendered with the stack's real ARNs,
   in the git-ignored `.chalice/stacks/`, with API_URL_PARAMETER: the SSM parameter the REST
   API's URL is written to (callqueue.deploy.sequence), where the functions find the URLs of
   their webhooks. The tracked `.chalice/config.json` is never written.
2. `chalice deploy --stage S`, with those values (chalice_stage.run).
3. `post_deploy(S)`: what Chalice 1.34 cannot configure: `ReportBatchItemFailures` on every SQS
   event source mapping it created (read from `.chalice/deployed/S.json`).
4. The stack again when Chalice has just created the callback function, given its name
   (StatusCallbackFunction; `deploy` finds it there from then on): the function URL Twilio's
   status callbacks come to, its public permissions and the SSM parameter the senders read it
   from. Chalice cannot declare a function URL, and the stack cannot refer to a function before
   Chalice creates it.

`destroy(S)` empties the stack's buckets (CloudFormation cannot delete a bucket with objects) and
deletes the stack; `chalice delete --stage S` removes the functions first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

from callqueue.deploy.chalice_stage import policy_dir, write_stage_file
from callqueue.deploy.moto_stack import deploy_into_moto
from callqueue.deploy.stack import StackError, deploy_stack, failure_reasons
from callqueue.deploy.stack_outputs import (
    APP_NAME,
    api_url_parameter,
    callback_url_parameter,
    stack_name,
)
from callqueue.project import PROJECT_DIR
from chalicelib.config import API_URL_PARAMETER, CALLBACK_URL_PARAMETER
from chalicelib.errors import CallqueueError

# app.py's function behind the status callbacks' function URL (the stack's StatusCallbackUrl).
CALLBACK_FUNCTION = "status_callback_url"
CALLBACK_PARAMETER = "StatusCallbackFunction"
DEFAULT_SECRET = "callqueue/twilio"  # noqa: S105 - the secret's name, not a credential
BUCKET_OUTPUTS = (
    "SourceBucket",
    "HoldingBucket",
    "ProcessBucket",
    "ReportsBucket",
    "ArchiveBucket",
)
# Policy statements may carry a "Comment" (why a statement exists, or why AWS requires "*");
# IAM accepts no such element, so it is dropped when a policy is rendered.
COMMENT = "Comment"


class InfraError(CallqueueError):
    """A deployment step failed; the message says which and why."""


@dataclass(frozen=True)
class Location:
    """Where a stack lives, read from its id (arn:PARTITION:cloudformation:REGION:ACCOUNT:...)."""

    partition: str
    region: str
    account: str

    @classmethod
    def of_stack(cls, stack_id: str) -> Location:
        _, partition, _, region, account, *_ = stack_id.split(":")
        return cls(partition, region, account)


def deploy(
    cloudformation: Any,
    secretsmanager: Any,
    stage: str,
    *,
    parameters: Mapping[str, str] | None = None,
    project_dir: Path = PROJECT_DIR,
    moto: bool = False,
    poll: float = 5.0,
    lambda_client: Any = None,
) -> dict[str, str]:
    """Step 1: the stack, and the stage's environment and rendered policies in
    `.chalice/stacks/`. Returns the stack's outputs as the functions' environment variables.
    `moto`: the tests' and the local runtime's target. `lambda_client`: where to look for the
    callback function, for its function URL (step 4), unless `parameters` name it."""
    parameters = {"Stage": stage, **(parameters or {})}
    if lambda_client is not None and CALLBACK_PARAMETER not in parameters:
        parameters[CALLBACK_PARAMETER] = deployed_callback_function(lambda_client, stage)
    # Before the stack: a stack without its secret deploys, then every call fails.
    secret = secret_arn(secretsmanager, parameters.get("TwilioSecretName", DEFAULT_SECRET))
    name = stack_name(stage)
    try:
        deploy = deploy_into_moto if moto else deploy_stack
        env = deploy(cloudformation, name, parameters, poll=poll)
    except StackError as error:
        raise InfraError(str(error)) from error
    stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    location = Location.of_stack(stack["StackId"])
    rendered = render_policies(project_dir, stage, policy_values(env, location, stage, secret))
    # The functions that need the webhook URLs read the API's URL there, and the callback
    # function's once the stack has it (chalicelib.aws.api_url).
    environment = {
        **env,
        API_URL_PARAMETER: api_url_parameter(stage),
        CALLBACK_URL_PARAMETER: callback_url_parameter(stage),
    }
    write_stage_file(project_dir, stage, environment, [p.stem for p in rendered])
    return env


def deployed_callback_function(lambda_client: Any, stage: str) -> str:
    """The callback function's name once Chalice has created it, else "" (no function URL yet:
    an update without it would delete the URL)."""
    name = function_name(stage, CALLBACK_FUNCTION)
    try:
        lambda_client.get_function(FunctionName=name)
    except lambda_client.exceptions.ResourceNotFoundException:
        return ""
    return name


def secret_arn(secretsmanager: Any, secret_id: str) -> str:
    """The Twilio secret's full ARN (Secrets Manager adds a random suffix to the name), so the
    sender's policy names exactly that secret. The secret is the user's, created beforehand."""
    try:
        return str(secretsmanager.describe_secret(SecretId=secret_id)["ARN"])
    except secretsmanager.exceptions.ResourceNotFoundException:
        region = secretsmanager.meta.region_name
        raise InfraError(
            f"the Twilio secret {secret_id!r} does not exist in {region}; create it once with "
            f"`aws secretsmanager create-secret --name {secret_id} --secret-string "
            "file://twilio-secret.json` (docs/deploy.md, 'Test, then live credentials')"
        ) from None


def policy_values(
    env: Mapping[str, str], location: Location, stage: str, twilio_secret_arn: str
) -> dict[str, str]:
    """The placeholders of `.chalice/policies/*.json`: the ARN of every resource of the stack."""
    p, r, a = location.partition, location.region, location.account

    def queue(name: str) -> str:
        return f"arn:{p}:sqs:{r}:{a}:{env[name]}"

    def table(name: str) -> str:
        return f"arn:{p}:dynamodb:{r}:{a}:table/{env[name]}"

    def bucket(name: str) -> str:
        return f"arn:{p}:s3:::{env[name]}"

    return {
        "SourceBucketArn": bucket("SOURCE_BUCKET"),
        "HoldingBucketArn": bucket("HOLDING_BUCKET"),
        "ProcessBucketArn": bucket("PROCESS_BUCKET"),
        "ReportsBucketArn": bucket("REPORTS_BUCKET"),
        "ArchiveBucketArn": bucket("ARCHIVE_BUCKET"),
        "SendQueueArn": queue("SEND_QUEUE"),
        "DeadLetterQueueArn": queue("DEAD_LETTER_QUEUE"),
        "ArchiveQueueArn": queue("ARCHIVE_QUEUE"),
        "ResultsQueueArn": queue("RESULTS_QUEUE"),
        "RouterQueueArn": queue("ROUTER_QUEUE"),
        "SuppressionQueueArn": queue("SUPPRESSION_QUEUE"),
        "SystemicQueueArn": queue("SYSTEMIC_QUEUE"),
        "JobsTableArn": table("JOBS_TABLE"),
        "ResultsTableArn": table("RESULTS_TABLE"),
        "SuppressionTableArn": table("SUPPRESSION_TABLE"),
        "RateLimitTableArn": table("RATE_LIMIT_TABLE"),
        "ResponseTopicArn": env["RESPONSE_TOPIC_ARN"],
        "AlertTopicArn": env["ALERT_TOPIC_ARN"],
        "StateMachineArn": env["STATE_MACHINE_ARN"],
        # Its executions' ARNs are `...:execution:MACHINE:NAME` (policies add ":*").
        "ReleaseExecutionsArn": env["STATE_MACHINE_ARN"].replace(":stateMachine:", ":execution:"),
        "ErrorBusArn": f"arn:{p}:events:{r}:{a}:event-bus/{env['ERROR_BUS']}",
        "TwilioSecretArn": twilio_secret_arn,
        # The REST API's URL, written by the deploy (its name starts with "/").
        "ApiUrlParameterArn": f"arn:{p}:ssm:{r}:{a}:parameter{api_url_parameter(stage)}",
        # The callback function's URL, the stack's once the function exists.
        "CallbackUrlParameterArn": f"arn:{p}:ssm:{r}:{a}:parameter{callback_url_parameter(stage)}",
        # Per function: render_policies fills in the function's name.
        "LogGroupArn": f"arn:{p}:logs:{r}:{a}:log-group:/aws/lambda/$function",
        "FunctionArn": f"arn:{p}:lambda:{r}:{a}:function:$function",
    }


def policy_sources(project_dir: Path = PROJECT_DIR) -> dict[str, Path]:
    """Each function's policy, with placeholders: `.chalice/policies/FUNCTION.json`."""
    return {p.stem: p for p in sorted((project_dir / ".chalice" / "policies").glob("*.json"))}


def render_policy(source: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """A policy with its placeholders replaced and its comments dropped; an unknown placeholder
    is an error, never an empty ARN."""

    def fill(node: Any) -> Any:
        if isinstance(node, str):
            return Template(node).substitute(values)
        if isinstance(node, list):
            return [fill(item) for item in node]
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items() if k != COMMENT}
        return node

    rendered: dict[str, Any] = fill(source)
    return rendered


def function_name(stage: str, function: str) -> str:
    """The Lambda function Chalice names for one of the app's (the REST API's is the stage's)."""
    return f"{APP_NAME}-{stage}" if function == "api_handler" else f"{APP_NAME}-{stage}-{function}"


def render_policies(
    project_dir: Path, stage: str, values: Mapping[str, str], *, out: Path | None = None
) -> list[Path]:
    """Every function's policy for the stage, in `.chalice/stacks/STAGE/` (git-ignored) unless
    `out` says where."""
    out = out or policy_dir(project_dir, stage)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for function, path in policy_sources(project_dir).items():
        name = function_name(stage, function)
        own = {
            **values,
            "LogGroupArn": Template(values["LogGroupArn"]).substitute(function=name),
            "FunctionArn": Template(values["FunctionArn"]).substitute(function=name),
        }
        try:
            policy = render_policy(json.loads(path.read_text()), own)
        except KeyError as error:
            raise InfraError(f"{path}: no value for the placeholder {error}") from None
        target = out / path.name
        target.write_text(json.dumps(policy, indent=2) + "\n")
        written.append(target)
    return written


def post_deploy(lambda_client: Any, stage: str, *, project_dir: Path = PROJECT_DIR) -> list[str]:
    """Step 3: turn on ReportBatchItemFailures for every SQS trigger Chalice created, so a
    handler can return the records it could not process (`batchItemFailures`) instead of failing
    the batch. Chalice 1.34 has no setting for it; its updates leave the setting as it is, but a
    trigger it creates anew needs this step again. Returns the mappings changed."""
    deployed = project_dir / ".chalice" / "deployed" / f"{stage}.json"
    if not deployed.is_file():
        raise InfraError(f"{deployed} not found: run `chalice deploy --stage {stage}` first")
    resources = json.loads(deployed.read_text())["resources"]
    changed = []
    for resource in resources:
        if resource.get("resource_type") != "sqs_event":
            continue
        lambda_client.update_event_source_mapping(
            UUID=resource["event_uuid"], FunctionResponseTypes=["ReportBatchItemFailures"]
        )
        changed.append(str(resource["name"]))
    if not changed:
        raise InfraError(f"{deployed} lists no SQS event sources: is it this app's deployment?")
    return changed


def destroy(
    cloudformation: Any, s3: Any, stage: str, *, timeout: float = 1800.0, poll: float = 5.0
) -> list[str]:
    """Empty the stack's buckets and delete the stack; returns the buckets emptied."""
    name = stack_name(stage)
    try:
        stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    except cloudformation.exceptions.ClientError as error:
        raise InfraError(f"stack {name} not found: {error}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    buckets = [outputs[key] for key in BUCKET_OUTPUTS if key in outputs]
    for bucket in buckets:
        empty_bucket(s3, bucket)
    stack_id = stack["StackId"]
    cloudformation.delete_stack(StackName=name)
    deadline = time.monotonic() + timeout
    while True:
        # By id: a deleted stack is no longer found by name.
        status = cloudformation.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"]
        if status == "DELETE_COMPLETE":
            return buckets
        if status == "DELETE_FAILED":
            reasons = failure_reasons(cloudformation, stack_id)
            raise InfraError(f"stack {name}: DELETE_FAILED" + "".join(f"\n  {r}" for r in reasons))
        if time.monotonic() > deadline:
            raise InfraError(f"stack {name}: still {status} after {timeout:.0f} s")
        time.sleep(poll)


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object (and every version, should versioning be turned on) in a bucket."""
    deleted = 0
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket):
        keys = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        ]
        # DeleteObjects takes at most 1,000 keys, as many as a page holds.
        if keys:
            response = s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            if response.get("Errors"):
                first = response["Errors"][0]
                raise InfraError(
                    f"s3://{bucket}/{first['Key']}: {first['Code']} {first['Message']}"
                )
            deleted += len(keys)
    return deleted
