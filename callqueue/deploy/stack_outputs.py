"""A deployed stage, found by its name: the stack `callqueue-STAGE`'s outputs as one typed record.

What the CLI and the Python client for a deployed stack start from (`outputs("dev")`), and what
`callqueue deploy` hands the functions as their environment. The REST API is Chalice's, not the
stack's: its URL is kept in the SSM parameter `/callqueue/STAGE/api-url`, written when the
functions are deployed (callqueue.deploy.sequence) and deleted with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from callqueue.deploy.stack import OUTPUT_ENV
from chalicelib.errors import CallqueueError

APP_NAME = "callqueue"


class StageNotDeployed(CallqueueError):
    """No stack for the stage in this account and region, or one that is not usable."""


def stack_name(stage: str) -> str:
    return f"{APP_NAME}-{stage}"


def api_url_parameter(stage: str) -> str:
    """The SSM parameter holding the stage's REST API URL."""
    return f"/{APP_NAME}/{stage}/api-url"


def callback_url_parameter(stage: str) -> str:
    """The SSM parameter holding the stage's callback function URL (the stack's
    StatusCallbackUrlParameter)."""
    return f"/{APP_NAME}/{stage}/status-callback-url"


@dataclass(frozen=True)
class StackOutputs:
    """Where a stage's resources are. Field names are the functions' environment variables in
    lower case (chalicelib.config reads the upper-case ones)."""

    stage: str
    stack_id: str
    region: str
    account: str
    source_bucket: str
    holding_bucket: str
    process_bucket: str
    reports_bucket: str
    archive_bucket: str
    send_queue: str
    dead_letter_queue: str
    archive_queue: str
    results_queue: str
    router_queue: str
    suppression_queue: str
    systemic_queue: str
    sink_dead_letter_queue: str
    jobs_table: str
    results_table: str
    suppression_table: str
    rate_limit_table: str
    response_topic_arn: str
    alert_topic_arn: str
    state_machine_arn: str
    error_bus: str
    twilio_secret_id: str
    # The REST API's base URL (ends with "/"), once the functions are deployed.
    api_url: str | None = None
    dashboard_name: str | None = None

    @property
    def stack_name(self) -> str:
        return stack_name(self.stage)

    @property
    def buckets(self) -> tuple[str, ...]:
        return (
            self.source_bucket,
            self.holding_bucket,
            self.process_bucket,
            self.reports_bucket,
            self.archive_bucket,
        )

    def environment(self) -> dict[str, str]:
        """The functions' environment variables for the stack's resources."""
        return {env: str(getattr(self, env.lower())) for env in OUTPUT_ENV.values()}

    @classmethod
    def of_stack(
        cls, stage: str, stack: dict[str, Any], *, api_url: str | None = None
    ) -> StackOutputs:
        """From a DescribeStacks entry; StageNotDeployed if an output the functions need is
        missing (a stack made from another template, or one still being created)."""
        by_key = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        missing = sorted(key for key in OUTPUT_ENV if key not in by_key)
        if missing:
            raise StageNotDeployed(
                f"stack {stack['StackName']} ({stack['StackStatus']}) lacks the outputs "
                + ", ".join(missing)
            )
        _, _, _, region, account, *_ = stack["StackId"].split(":")
        values = {env.lower(): by_key[key] for key, env in OUTPUT_ENV.items()}
        return cls(
            stage=stage,
            stack_id=stack["StackId"],
            region=region,
            account=account,
            api_url=api_url,
            dashboard_name=by_key.get("DashboardName"),
            **values,
        )


def outputs(stage: str, *, cloudformation: Any = None, ssm: Any = None) -> StackOutputs:
    """The deployed stage `stage` in the environment's account and region (boto3's defaults,
    AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL): StageNotDeployed, with what to do, if there is
    none. Clients may be given (tests, another session)."""
    import boto3  # noqa: PLC0415 - only commands that reach AWS load boto3

    cloudformation = cloudformation or boto3.client("cloudformation")
    ssm = ssm or boto3.client("ssm", region_name=cloudformation.meta.region_name)
    name = stack_name(stage)
    try:
        stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    except cloudformation.exceptions.ClientError:
        raise StageNotDeployed(
            f"stage {stage!r} is not deployed in {cloudformation.meta.region_name} "
            f"(no stack {name}): run `callqueue deploy --stage {stage}`"
        ) from None
    return StackOutputs.of_stack(stage, stack, api_url=api_url(ssm, stage))


def api_url(ssm: Any, stage: str) -> str | None:
    try:
        value = ssm.get_parameter(Name=api_url_parameter(stage))["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return None
    return str(value)
