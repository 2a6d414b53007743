"""The moto-backed fixtures: the deployment's stack in in-process moto and the Twilio emulator.

Importing this module makes every in-process moto (`mock_aws`) answer a request at a time, as its
server does, and gives chalice.test's invocations their functions' configured timeouts; the
conftest of each folder that uses in-process moto imports it (tests/unit does not, so it runs
without moto). Region and credentials are set by tests/conftest.py, first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import chalice.test
import pytest
from chalice.local import LambdaContext
from moto import mock_aws

from callqueue.deploy.moto_stack import deploy_into_moto, expose_state_machine_to_interpreter
from callqueue.local import lambdas
from callqueue.local.emulator import TwilioEmulator
from callqueue.local.moto_patches.awslambda import routed
from callqueue.local.moto_patches.locking import BACKENDS, serialize_in_process
from callqueue.project import PROJECT_DIR
from chalicelib import wiring

# Every test's mock_aws dispatches its requests one at a time, as DynamoDB and SQS apply them.
serialize_in_process(BACKENDS)


def configured_timeout_seconds(function: str, stage: str = "dev") -> int:
    """A function's `lambda_timeout` as `.chalice/config.json` sets it for the stage."""
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    scoped = config["stages"][stage]
    own = scoped.get("lambda_functions", {}).get(function, {})
    return int(own.get("lambda_timeout", scoped.get("lambda_timeout", config["lambda_timeout"])))


class ConfiguredContext(LambdaContext):
    """chalice.test gives every invocation chalice.local's default of 3 s, whatever the
    function's timeout; the sender reads the time it has left (wiring.invocation_end), and with
    3 s it would call nothing. This is the context Lambda gives: the configured timeout."""

    def __init__(self, function_name: str, memory_size: int, **kwargs: Any) -> None:
        kwargs.setdefault("max_runtime_ms", configured_timeout_seconds(function_name) * 1000)
        super().__init__(function_name, memory_size, **kwargs)


chalice.test.LambdaContext = ConfiguredContext  # type: ignore[misc]

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "0" * 31 + "2"  # a placeholder, not a credential


@dataclass
class Stack:
    env: dict[str, str]
    s3: Any
    sqs: Any
    sns: Any
    dynamodb: Any
    sfn: Any

    @property
    def send_queue_url(self) -> str:
        return str(self.sqs.get_queue_url(QueueName=self.env["SEND_QUEUE"])["QueueUrl"])

    @property
    def dlq_url(self) -> str:
        return str(self.sqs.get_queue_url(QueueName=self.env["DEAD_LETTER_QUEUE"])["QueueUrl"])


def subscribe_queue(sqs: Any, sns: Any, topic_arn: str, name: str) -> str:
    """A queue receiving a topic's messages as they were published (raw delivery)."""
    url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=arn["Attributes"]["QueueArn"],
        Attributes={"RawMessageDelivery": "true"},
    )
    return url


@pytest.fixture
def emulator() -> Iterator[TwilioEmulator]:
    with TwilioEmulator(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as emu:
        yield emu


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, emulator: TwilioEmulator) -> Iterator[Stack]:
    """The deployment's own CloudFormation template, deployed into moto, with the handlers'
    environment taken from its outputs, and moto's Lambda API routed to the app's functions."""
    config = {
        "stepfunctions": {"execute_state_machine": True},
        "lambda": {"use_docker": False},
    }
    with mock_aws(config=config):  # type: ignore[arg-type]
        cloudformation = boto3.client("cloudformation")
        env = deploy_into_moto(cloudformation, "callqueue-dev", {"Stage": "dev"}, poll=0.05)
        expose_state_machine_to_interpreter(
            cloudformation, boto3.client("stepfunctions"), "callqueue-dev", env
        )
        boto3.client("secretsmanager").create_secret(
            Name="callqueue/twilio",
            SecretString=(
                f'{{"TEST_ACCOUNT_SID": "{ACCOUNT_SID}", "TEST_AUTH_TOKEN": "{AUTH_TOKEN}"}}'
            ),
        )
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("TWILIO_BASE_URL", emulator.base_url)
        monkeypatch.setenv("CPS", "10")
        monkeypatch.setenv("WINDOW_SECONDS", "2")
        wiring.reset()
        import app as app_module

        functions = lambdas.pure_functions(app_module.app, "dev")
        lambdas.create_functions(boto3.client("lambda"), boto3.client("iam"), list(functions))
        with routed(functions, while_invoking=BACKENDS.released):
            yield Stack(
                env=env,
                s3=boto3.client("s3"),
                sqs=boto3.client("sqs"),
                sns=boto3.client("sns"),
                dynamodb=boto3.client("dynamodb"),
                sfn=boto3.client("stepfunctions"),
            )
        wiring.reset()
