"""The stack deployed into moto (the local runtime, the tests): work around moto gaps (harness
only) in what its CloudFormation creates, leaving out what it cannot create and making through
the APIs what it leaves undone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import boto3

from callqueue.deploy.stack import STATE_MACHINE, StackError, deploy_stack, render_template


def deploy_into_moto(
    cloudformation: Any, stack_name: str, parameters: Mapping[str, str], *, poll: float = 2.0
) -> dict[str, str]:
    """deploy_stack into moto: the template without what moto cannot create, then the
    subscriptions it has no model for."""
    full = render_template()
    env = deploy_stack(
        cloudformation, stack_name, parameters, document=moto_compatible(full)[0], poll=poll
    )
    subscribe_queues(cloudformation, stack_name, full)
    apply_bucket_cors(cloudformation, stack_name, full)
    return env


def moto_compatible(document: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Work around moto gaps (harness only): the template without the resources moto's
    CloudFormation cannot create, and without what refers to them, for deploying into moto.

    moto 5.2.5 has no CloudFormation model for AWS::S3::BucketPolicy, AWS::SQS::QueuePolicy,
    AWS::CloudWatch::Alarm or AWS::SNS::Subscription: it skips the policies with a warning and
    fails the stack on a reference to an alarm (the dashboard's). moto enforces no policies and
    raises no alarms anyway. Returns the document and the logical ids left out, sorted.
    """
    # moto is the harness's dependency: `callqueue infra deploy` to AWS does not import it.
    from moto.cloudformation.parsing import get_model_map  # noqa: PLC0415

    supported = get_model_map()
    resources = dict(document["Resources"])
    dropped = {name for name, r in resources.items() if r["Type"] not in supported}
    while True:
        dependents = {
            name
            for name, resource in resources.items()
            if name not in dropped and _refers_to(resource, dropped)
        }
        if not dependents:
            break
        dropped |= dependents
    outputs = {
        name: output
        for name, output in document.get("Outputs", {}).items()
        if not _refers_to(output, dropped)
    }
    kept = {name: r for name, r in resources.items() if name not in dropped}
    return {**document, "Resources": kept, "Outputs": outputs}, sorted(dropped)


def _refers_to(node: Any, names: set[str]) -> bool:
    """Whether a template fragment names one of the logical ids (Ref, GetAtt, Sub, DependsOn)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and value in names:
                return True
            if key == "Fn::GetAtt" and value[0] in names:
                return True
            if key == "DependsOn" and set([value] if isinstance(value, str) else value) & names:
                return True
            if key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                if any(f"${{{n}}}" in text or f"${{{n}." in text for n in names):
                    return True
            if _refers_to(value, names):
                return True
        return False
    if isinstance(node, list):
        return any(_refers_to(item, names) for item in node)
    return False


def subscribe_queues(cloudformation: Any, stack_name: str, document: Mapping[str, Any]) -> None:
    """Work around a moto gap (harness only): moto's CloudFormation has no
    AWS::SNS::Subscription, so the template's subscriptions of queues to topics are made here
    through the SNS API, with the attributes the template gives them (raw delivery, a filter
    policy). Others (the alerts' e-mail) have nothing to deliver to locally."""
    # moto's endpoint comes from the environment (AWS_ENDPOINT_URL), as for the stack's client.
    region = cloudformation.meta.region_name
    sns = boto3.client("sns", region_name=region)
    sqs = boto3.client("sqs", region_name=region)
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
        if "PhysicalResourceId" in r
    }

    def resolve(value: Any) -> str:
        if isinstance(value, dict) and "Ref" in value:
            return str(physical[value["Ref"]])
        if isinstance(value, dict) and value.get("Fn::GetAtt", [None, None])[1] == "Arn":
            url = physical[value["Fn::GetAtt"][0]]  # a queue: its URL
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            return str(attributes["Attributes"]["QueueArn"])
        raise StackError(f"cannot resolve {value!r} for a local subscription")

    for resource in document["Resources"].values():
        properties = resource.get("Properties", {})
        if resource["Type"] != "AWS::SNS::Subscription" or properties.get("Protocol") != "sqs":
            continue
        attributes = {}
        if properties.get("RawMessageDelivery"):
            attributes["RawMessageDelivery"] = "true"
        if "FilterPolicy" in properties:
            attributes["FilterPolicy"] = json.dumps(properties["FilterPolicy"])
        sns.subscribe(
            TopicArn=resolve(properties["TopicArn"]),
            Protocol="sqs",
            Endpoint=resolve(properties["Endpoint"]),
            Attributes=attributes,
        )


def apply_bucket_cors(cloudformation: Any, stack_name: str, document: Mapping[str, Any]) -> None:
    """Work around a moto gap (harness only): moto's CloudFormation ignores a bucket's
    CorsConfiguration, so the template's CORS rules are put through the S3 API."""
    s3: Any = boto3.client("s3", region_name=cloudformation.meta.region_name)
    for name, resource in document["Resources"].items():
        cors = resource.get("Properties", {}).get("CorsConfiguration")
        if resource["Type"] != "AWS::S3::Bucket" or cors is None:
            continue
        bucket = cloudformation.describe_stack_resource(
            StackName=stack_name, LogicalResourceId=name
        )
        rules = [
            {
                key.replace("MaxAge", "MaxAgeSeconds"): value
                for key, value in rule.items()
                if key in ("AllowedMethods", "AllowedOrigins", "AllowedHeaders", "MaxAge")
            }
            for rule in cors["CorsRules"]
        ]
        s3.put_bucket_cors(
            Bucket=bucket["StackResourceDetail"]["PhysicalResourceId"],
            CORSConfiguration={"CORSRules": rules},
        )


def expose_state_machine_to_interpreter(
    cloudformation: Any, sfn: Any, stack_name: str, outputs: Mapping[str, str]
) -> None:
    """Work around a moto gap (harness only): with `execute_state_machine` on, moto's Step
    Functions API answers from its interpreter's backend, which does not see state machines made
    by CloudFormation. Create the stack's state machine there too, under the same name and so the
    same ARN, with the definition CloudFormation resolved."""
    arn = outputs["STATE_MACHINE_ARN"]
    _, _, _, region, account, _, name = arn.split(":")
    stage = next(
        p["ParameterValue"]
        for p in cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]["Parameters"]
        if p["ParameterKey"] == "Stage"
    )
    stack_outputs = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]["Outputs"]
    role_arn = next(
        o["OutputValue"] for o in stack_outputs if o["OutputKey"] == "StateMachineRoleArn"
    )
    function_arn = f"arn:aws:lambda:{region}:{account}:function:callqueue-{stage}-release_chunk"
    definition = STATE_MACHINE.read_text().replace("${ReleaseChunkFunctionArn}", function_arn)
    sfn.create_state_machine(name=name, definition=definition, roleArn=role_arn)
