"""callqueue's Chalice app: declares the handlers and hands each event to chalicelib/downstream."""

from __future__ import annotations

import json
import logging
from typing import Any

from chalice.app import Chalice, Rate, S3Event, SQSEvent

from chalicelib import services
from chalicelib.records import QueuedRow
from chalicelib.release import LoopState
from downstream.messages import envelopes_of, events_of
from downstream.router import suppress

app = Chalice(app_name="callqueue")
app.log.setLevel(logging.INFO)
logging.getLogger("chalicelib").setLevel(logging.INFO)
logging.getLogger("downstream").setLevel(logging.INFO)

settings = services.settings()


@app.on_s3_event(bucket=settings.source_bucket, events=["s3:ObjectCreated:*"])
def handle_source_file(event: S3Event) -> None:
    services.splitter().split(event.bucket, event.key)


@app.lambda_function(name="release_chunk")
def handle_release_chunk(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return services.releaser().release(LoopState.from_json(event)).to_json()


@app.on_s3_event(bucket=settings.process_bucket, events=["s3:ObjectCreated:*"])
def handle_released_chunk(event: S3Event) -> None:
    services.enqueuer().enqueue_chunk(event.bucket, event.key)


@app.on_sqs_message(
    queue=settings.send_queue,
    batch_size=settings.sender_batch_size,
    maximum_concurrency=settings.sender_max_concurrency,
)
def handle_send_batch(event: SQSEvent) -> None:
    services.sender().send_batch(QueuedRow.from_json(json.loads(r.body)) for r in event)


# Downstream: each sink reads the response topic through a queue of its own.


@app.on_sqs_message(
    queue=settings.archive_queue, batch_size=1000, maximum_batching_window_in_seconds=30
)
def handle_archive_batch(event: SQSEvent) -> None:
    services.archive().write(envelopes_of(r.body for r in event))


@app.on_sqs_message(
    queue=settings.results_queue, batch_size=100, maximum_batching_window_in_seconds=5
)
def handle_results_batch(event: SQSEvent) -> None:
    services.results().record(envelopes_of(r.body for r in event))


@app.on_sqs_message(queue=settings.router_queue, batch_size=10)
def handle_router_batch(event: SQSEvent) -> None:
    services.router().route(envelopes_of(r.body for r in event))


@app.on_sqs_message(queue=settings.suppression_queue, batch_size=10)
def handle_suppression_events(event: SQSEvent) -> None:
    suppress(services.suppression(), events_of(r.body for r in event))


@app.on_sqs_message(queue=settings.systemic_queue, batch_size=10)
def handle_systemic_events(event: SQSEvent) -> None:
    services.systemic().handle(events_of(r.body for r in event))


@app.schedule(Rate(1, unit=Rate.MINUTES))
def handle_reconcile(event: Any) -> None:
    services.reconciler().run()
