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


def test_stop_waits_for_a_scheduled_invocation_under_way(
    sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scheduled function still running when the triggers stop (the reconciler writing a
    finished job's outcomes) ends before stop returns, so the stack is not torn down under it.
    It holds past the pollers' join (made 0 here), which was all any thread was given."""
    import callqueue.local.triggers as triggers_module

    monkeypatch.delenv(DEPLOYED_WINDOWS_ENV, raising=False)
    monkeypatch.setattr(triggers_module, "POLLER_JOIN_SECONDS", 0.0)
    started, release = triggers_module.threading.Event(), triggers_module.threading.Event()
    finished: list[bool] = []
    app = Chalice("scheduled")

    @app.schedule("rate(1 minute)")
    def reconcile(event: Any) -> None:
        started.set()
        release.wait(30)
        finished.append(release.is_set())

    triggers = Triggers(
        app,
        "dev",
        lambda name: boto3.client(name, region_name=REGION),
        region=REGION,
        schedule_period=0.01,
    )
    triggers.install()
    triggers.start()
    assert started.wait(10)
    # Released once the stop is under way.
    timer = triggers_module.threading.Timer(0.5, release.set)
    timer.start()
    triggers.stop()
    done_at_stop = list(finished)
    timer.join()
    assert done_at_stop == [True]
