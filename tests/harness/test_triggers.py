"""The local SQS triggers with the deployed batching windows (bench/cost.py's runs): a batch
gathers for the trigger's whole window, and one still gathering when the triggers stop is
handed to its function, as Lambda would, not dropped. In-process moto."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from chalice import Chalice
from moto import mock_aws

from callqueue.local.triggers import DEPLOYED_WINDOWS_ENV, Triggers

REGION = "us-east-1"


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


def in_flight(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesNotVisible"])


@pytest.mark.parametrize("deployed", [True, False])
def test_a_batch_gathering_at_stop_is_handed_over_only_with_deployed_windows(
    sqs: Any, monkeypatch: pytest.MonkeyPatch, deployed: bool
) -> None:
    if deployed:
        monkeypatch.setenv(DEPLOYED_WINDOWS_ENV, "1")
    else:
        monkeypatch.delenv(DEPLOYED_WINDOWS_ENV, raising=False)
    url = sqs.create_queue(QueueName="gathered")["QueueUrl"]
    app = Chalice("windows")
    batches: list[list[str]] = []

    @app.on_sqs_message(queue="gathered", batch_size=100, maximum_batching_window_in_seconds=300)
    def handle(event: Any) -> None:
        batches.append(sorted(record.body for record in event))

    triggers = Triggers(
        app, "dev", lambda name: boto3.client(name, region_name=REGION), region=REGION
    )
    triggers.install()
    triggers.start()
    for i in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
    # Received into the gathering batch, or (capped) handed over: a bounded wait for the
    # pollers, not a timed assertion.
    for _ in range(1000):
        handed = sum(len(b) for b in batches)
        if (deployed and in_flight(sqs, url) == 5) or handed == 5:
            break
        time.sleep(0.01)
    if deployed:
        assert batches == []  # a 300-s window: still gathering
    triggers.stop()

    if deployed:
        # Each message once, in the batches its pollers (two, as Lambda has several) gathered.
        assert sorted(m for b in batches for m in b) == [f"m{i}" for i in range(5)]
        assert len(batches) <= 2
        assert in_flight(sqs, url) == 0
        assert sqs.receive_message(QueueUrl=url).get("Messages") is None  # deleted
    else:
        # Capped at 1 s: the batches went to the function before the stop.
        assert sorted(m for b in batches for m in b) == [f"m{i}" for i in range(5)]
