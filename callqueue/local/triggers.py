"""Event sources of the Chalice app, driven locally the way Lambda drives them.

Everything is read from the app's registered event sources, so a handler added to app.py needs no
change here:
- S3 events: the bucket notifies an internal queue (S3 -> SQS is real moto behaviour) and the
  handler is invoked asynchronously with Lambda's retry policy (3 attempts, then the event is
  kept on a failed-events queue and reported).
- SQS: pollers honour the trigger's batch size and maximum concurrency; the queue's own delays,
  visibility timeout and redrive policy apply, since they are moto's; a batch whose invocation
  fails is not deleted, and a returned `batchItemFailures` list keeps just those messages.
- SNS: the topic delivers to an internal queue and each notification becomes a Lambda SNS event.
- Schedules: `rate(...)` expressions run on their period.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalice.app import (
    S3EventConfig,
    ScheduledEventConfig,
    SNSEventConfig,
    SQSEventConfig,
)

from callqueue.local.lambda_events import (
    batch_item_failures,
    is_s3_test_event,
    rate_seconds,
    s3_event,
    scheduled_event,
    sns_event,
    sqs_event,
)
from callqueue.local.lambdas import Handler, SimulatedCrash, function_name, invoke_handler

log = logging.getLogger(__name__)

# Lambda retries a failed asynchronous invocation twice.
ASYNC_ATTEMPTS = 3
# Lambda waits about a minute before retrying an async invocation; locally a few seconds.
ASYNC_RETRY_SECONDS = 3
DEFAULT_SQS_CONCURRENCY = 5
# Receivers per queue sharing the function's concurrency.
POLLERS = 2
# A poller that finds its queue empty waits longer each time, up to this (every receive costs
# moto a request: a dozen idle queues with two pollers each add up).
MAX_IDLE_POLL_SECONDS = 1.0
# Batching windows (up to 300 s in Lambda) are capped locally so a run ends in seconds, unless
# DEPLOYED_WINDOWS_ENV is set (bench/cost.py: the sinks' requests as deployed); then a batch still
# gathering when the triggers stop is handed to its function, and waited for, as Lambda would.
MAX_LOCAL_BATCHING_WINDOW = 1.0
DEPLOYED_WINDOWS_ENV = "CALLQUEUE_LOCAL_DEPLOYED_WINDOWS"
# How long stopping waits for those last batches, and for a scheduled invocation under way (the
# functions' default timeout: no invocation runs longer on Lambda).
DRAIN_SECONDS = 60.0
# How long stopping waits for each poller (they are daemons, and one may be waiting on a busy
# function's instances).
POLLER_JOIN_SECONDS = 5.0


@dataclass
class Invocations:
    """Counts of handler invocations and failures, by function name."""

    ok: dict[str, int]
    failed: dict[str, int]
    lock: threading.Lock

    @classmethod
    def empty(cls) -> Invocations:
        return cls({}, {}, threading.Lock())

    def record(self, name: str, ok: bool) -> None:
        with self.lock:
            target = self.ok if ok else self.failed
            target[name] = target.get(name, 0) + 1


@dataclass(frozen=True)
class Source:
    name: str
    handler: Handler
    queue_url: str
    batch_size: int
    concurrency: int
    to_event: Callable[[list[dict[str, Any]]], Any]
    batching_window: float = 0.0
    # Messages Lambda would never see (S3's test event): deleted without an invocation.
    ignore: Callable[[dict[str, Any]], bool] = lambda _: False


class Triggers:
    """Wires an imported Chalice app module to the resources in a (moto) account."""

    def __init__(
        self,
        app: Any,
        stage: str,
        clients: Callable[[str], Any],
        *,
        region: str,
        poll_interval: float = 0.02,
        schedule_period: float | None = None,
        remote: Callable[[str], Callable[[Any], Any] | None] = lambda name: None,
    ) -> None:
        """`schedule_period`: run schedules at least this often (the local runtime's runs last
        seconds, not the minutes a deployed schedule's period is measured in). `remote`: for a
        function run by another process (callqueue.local.worker_process), how to invoke it there."""
        self._app = app
        self._stage = stage
        self._client = clients
        self._region = region
        self._poll_interval = poll_interval
        self._schedule_period = schedule_period
        self._remote = remote
        self._account = "000000000000"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sources: list[Source] = []
        self._scheduled: list[threading.Thread] = []
        self.invocations = Invocations.empty()
        self.failed_events_url = ""
        self._deployed_windows = bool(os.environ.get(DEPLOYED_WINDOWS_ENV))
        self._batches: list[threading.Thread] = []

    def install(self) -> None:
        sqs = self._client("sqs")
        failed = sqs.create_queue(QueueName=f"callqueue-{self._stage}-local-failed-events")
        self.failed_events_url = failed["QueueUrl"]
        failed_arn = self._queue_arn(self.failed_events_url)
        s3_by_bucket: dict[str, list[tuple[S3EventConfig, str]]] = {}
        for config in self._app.event_sources:
            handler = self._app.handler_map[config.name]
            name = function_name(self._app.app_name, self._stage, config.name)
            if isinstance(config, S3EventConfig):
                url = self._async_queue(name, failed_arn)
                s3_by_bucket.setdefault(config.bucket, []).append((config, url))
                self._sources.append(
                    Source(name, handler, url, 1, 2, s3_event, ignore=is_s3_test_event)
                )
            elif isinstance(config, SQSEventConfig):
                queue = config.queue or (config.queue_arn or "").rsplit(":", 1)[-1]
                url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
                concurrency = config.maximum_concurrency or DEFAULT_SQS_CONCURRENCY
                self._sources.append(
                    Source(
                        name,
                        handler,
                        url,
                        config.batch_size,
                        concurrency,
                        self._sqs_event(url),
                        config.maximum_batching_window_in_seconds
                        if self._deployed_windows
                        else min(
                            config.maximum_batching_window_in_seconds, MAX_LOCAL_BATCHING_WINDOW
                        ),
                    )
                )
            elif isinstance(config, SNSEventConfig):
                url = self._async_queue(name, failed_arn)
                self._subscribe(config.topic, url)
                self._sources.append(Source(name, handler, url, 1, 2, sns_event))
            elif isinstance(config, ScheduledEventConfig):
                self._schedule(name, handler, config.schedule_expression)
            else:
                log.warning("%s: %s triggers are not run locally", name, type(config).__name__)
        for bucket, configs in s3_by_bucket.items():
            self._notify(bucket, configs)

    def start(self) -> None:
        for thread in self._scheduled:
            thread.start()
            self._threads.append(thread)
        for source in self._sources:
            # Like Lambda's SQS pollers: a few receivers share the function's concurrency.
            free = threading.BoundedSemaphore(source.concurrency)
            for i in range(min(source.concurrency, POLLERS)):
                thread = threading.Thread(
                    target=self._poll, args=(source, free), name=f"{source.name}-{i}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        deadline = time.monotonic() + DRAIN_SECONDS
        # A scheduled invocation under way (the reconciler writing a finished job's outcomes)
        # ends before the stack it talks to goes: cut off, it failed against a stopped moto
        # and printed a traceback at the end of every such run.
        for thread in self._threads:
            scheduled = thread in self._scheduled
            thread.join(
                timeout=max(0.0, deadline - time.monotonic()) if scheduled else POLLER_JOIN_SECONDS
            )
        if self._deployed_windows:
            for thread in self._batches:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _queue_arn(self, url: str) -> str:
        attributes = self._client("sqs").get_queue_attributes(
            QueueUrl=url, AttributeNames=["QueueArn"]
        )
        return str(attributes["Attributes"]["QueueArn"])

    def _async_queue(self, name: str, failed_arn: str) -> str:
        """An internal queue standing for Lambda's asynchronous invocation queue."""
        url: str = self._client("sqs").create_queue(
            QueueName=f"{name}-local-async"[:80],
            Attributes={
                "VisibilityTimeout": str(ASYNC_RETRY_SECONDS),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": failed_arn, "maxReceiveCount": ASYNC_ATTEMPTS}
                ),
            },
        )["QueueUrl"]
        return url

    def _notify(self, bucket: str, configs: list[tuple[S3EventConfig, str]]) -> None:
        queue_configurations = []
        for config, url in configs:
            entry: dict[str, Any] = {
                "QueueArn": self._queue_arn(url),
                "Events": config.events,
            }
            rules = [
                {"Name": kind, "Value": value}
                for kind, value in (("prefix", config.prefix), ("suffix", config.suffix))
                if value
            ]
            if rules:
                entry["Filter"] = {"Key": {"FilterRules": rules}}
            queue_configurations.append(entry)
        self._client("s3").put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={"QueueConfigurations": queue_configurations},
        )

    def _subscribe(self, topic: str, url: str) -> None:
        sns = self._client("sns")
        if not topic.startswith("arn:"):
            topic = sns.create_topic(Name=topic)["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=self._queue_arn(url))

    def _sqs_event(self, url: str) -> Callable[[list[dict[str, Any]]], Any]:
        arn = self._queue_arn(url)
        return lambda messages: sqs_event(messages, arn, self._region)

    def _schedule(self, name: str, handler: Handler, expression: Any) -> None:
        period = rate_seconds(expression)
        if period is None:
            log.warning("%s: schedule %s is not run locally (only rate())", name, expression)
            return
        if self._schedule_period is not None:
            period = min(period, self._schedule_period)

        def run() -> None:
            while not self._stop.wait(period):
                self._invoke(name, handler, scheduled_event(self._account, self._region))

        self._scheduled.append(threading.Thread(target=run, name=name, daemon=True))

    def _poll(self, source: Source, free: threading.BoundedSemaphore) -> None:
        """Receive batches and hand each to a free "instance" of the function, up to the
        trigger's concurrency. A batch is received only once an instance is free, so its
        visibility timeout does not run while it waits.

        Short polls with a brief pause: moto's long poll wakes only for new messages, not for
        delayed ones becoming visible, which would add up to a second to every delay."""
        sqs = self._client("sqs")
        idle = self._poll_interval
        while not self._stop.is_set():
            free.acquire()
            try:
                messages = self._receive(sqs, source)
            except Exception:
                free.release()
                if self._stop.is_set():
                    return
                log.exception("%s: polling failed", source.name)
                self._stop.wait(1.0)
                continue
            if not messages:
                free.release()
                # Back off while the queue is empty: every receive costs moto a scan of the queue.
                self._stop.wait(idle)
                idle = min(idle * 2, MAX_IDLE_POLL_SECONDS)
                continue
            idle = self._poll_interval
            thread = threading.Thread(
                target=self._run_batch, args=(source, messages, free), daemon=True
            )
            thread.start()
            if self._deployed_windows:
                self._batches.append(thread)

    def _receive(self, sqs: Any, source: Source) -> list[dict[str, Any]]:
        """One batch: a receive of up to 10 messages, then, for triggers with larger batches,
        more receives until the batch is full or its batching window has passed, as Lambda does."""
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + source.batching_window
        while True:
            response = sqs.receive_message(
                QueueUrl=source.queue_url,
                MaxNumberOfMessages=min(10, source.batch_size - len(messages)),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            received = response.get("Messages", [])
            messages.extend(received)
            if not messages or len(messages) >= source.batch_size:
                return messages
            if time.monotonic() >= deadline or self._stop.is_set():
                return messages
            if len(received) < 10:
                # The queue is drained for now: let the batch's next messages gather before
                # asking again (every receive costs moto a scan of the queue).
                self._stop.wait(min(self._poll_interval * 5, max(0.0, deadline - time.monotonic())))

    def _run_batch(
        self, source: Source, messages: list[dict[str, Any]], free: threading.BoundedSemaphore
    ) -> None:
        sqs = self._client("sqs")
        try:
            events = [m for m in messages if not source.ignore(m)]
            result = (
                self._invoke(source.name, source.handler, source.to_event(events))
                if events
                else None
            )
            if result is _FAILED:
                return  # left on the queue: visible again after the visibility timeout
            keep = batch_item_failures(result)
            done = [m for m in messages if m["MessageId"] not in keep]
            for start in range(0, len(done), 10):
                sqs.delete_message_batch(
                    QueueUrl=source.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(done[start : start + 10])
                    ],
                )
        except Exception:
            log.exception("%s: deleting a processed batch failed", source.name)
        finally:
            free.release()

    def _invoke(self, name: str, handler: Handler, event: Any) -> Any:
        remote = self._remote(name)
        try:
            result = remote(event) if remote else invoke_handler(name, handler, event)
        except SimulatedCrash as crash:
            # An injected crash, or a timeout (which the worker process logged, with where it
            # ended): the batch comes back after the visibility timeout.
            self.invocations.record(name, ok=False)
            log.info("%s: invocation ended: %s", name, crash)
            return _FAILED
        except Exception as error:
            self.invocations.record(name, ok=False)
            log.warning("%s: invocation failed: %s: %s", name, type(error).__name__, error)
            log.debug("%s: traceback", name, exc_info=True)
            return _FAILED
        self.invocations.record(name, ok=True)
        return result


_FAILED = object()
