"""A subscriber's filter policy on the response topic, through SNS and SQS (moto): with
responses grouped, a filter on an outcome or an error code keeps every message holding one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.sending.publisher import ResponsePublisher
from tests.envelopes import envelope, published
from tests.handlers.test_sizes import drain_bodies


@pytest.fixture
def topic() -> Iterator[tuple[Any, Any, str]]:
    with mock_aws():
        sns, sqs = boto3.client("sns"), boto3.client("sqs")
        yield sns, sqs, sns.create_topic(Name="responses")["TopicArn"]


def subscribe(sns: Any, sqs: Any, arn: str, name: str, policy: dict[str, Any]) -> None:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    sns.subscribe(
        TopicArn=arn,
        Protocol="sqs",
        Endpoint=queue_arn["Attributes"]["QueueArn"],
        Attributes={"RawMessageDelivery": "true", "FilterPolicy": json.dumps(policy)},
    )


def test_a_filter_on_outcome_or_error_code_gets_the_groups_holding_one(
    topic: tuple[Any, Any, str],
) -> None:
    sns, sqs, arn = topic
    subscribe(sns, sqs, arn, "failures", {"outcome": ["failed"]})
    subscribe(sns, sqs, arn, "unsubscribed", {"error_code": [21610]})
    subscribe(sns, sqs, arn, "landlines", {"error_code": [21614]})
    # Job a: one failure (21610) among sends, one message. Job b: sends only.
    job_a = [envelope("a", 1), envelope("a", 2, outcome="failed", sid=None, error_code=21610)]
    job_b = [envelope("b", row) for row in (1, 2, 3)]

    ResponsePublisher(sns, arn, sleep=lambda _: None).publish([*job_a, *job_b])

    [failures] = drain_bodies(sqs, "failures")
    assert published([failures]) == job_a  # the whole group, its sent row too
    assert published(drain_bodies(sqs, "unsubscribed")) == job_a
    assert drain_bodies(sqs, "landlines") == []


def test_raw_delivery_carries_the_group_s_attributes(topic: tuple[Any, Any, str]) -> None:
    sns, sqs, arn = topic
    subscribe(sns, sqs, arn, "all", {"job_id": ["a"]})
    group = [
        envelope("a", 1),
        envelope("a", 2, outcome="failed", sid=None, error_code=21610),
        envelope("a", 3, outcome="failed", sid=None, error_code=21610),
    ]

    ResponsePublisher(sns, arn, sleep=lambda _: None).publish(group)

    url = sqs.get_queue_url(QueueName="all")["QueueUrl"]
    [message] = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"]
    attributes = {
        k: (v["DataType"], v["StringValue"]) for k, v in message["MessageAttributes"].items()
    }
    assert attributes == {
        "job_id": ("String", "a"),
        "api": ("String", "messages"),
        "outcome": ("String.Array", '["sent","failed"]'),
        "error_code": ("String.Array", "[21610]"),
        "status": ("String.Array", "[201,400]"),
    }
