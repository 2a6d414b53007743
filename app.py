"""callqueue's Chalice app: declares the handlers and hands each event to chalicelib."""

from __future__ import annotations

import json
import logging
from typing import Any

from chalice.app import Chalice, S3Event, SQSEvent

from chalicelib import services
from chalicelib.records import QueuedRow
from chalicelib.release import LoopState

app = Chalice(app_name="callqueue")
app.log.setLevel(logging.INFO)
logging.getLogger("chalicelib").setLevel(logging.INFO)

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
