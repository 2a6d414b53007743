"""callqueue's Chalice app: declares the handlers and hands each event to chalicelib/downstream."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from chalice.app import Chalice, Rate, S3Event, SQSEvent

from chalicelib import observability, wiring
from chalicelib.api import console
from chalicelib.api.jobs import route_auth
from chalicelib.core.records import QueuedRow
from chalicelib.release.releaser import LoopState
from downstream import wiring as sinks
from downstream.messages import envelopes_of, events_of
from downstream.suppression import suppress

app = Chalice(app_name="callqueue")
app.log.setLevel(logging.INFO)
# In Lambda, one JSON object per log line with the job and row being worked on.
observability.configure_logging(("chalicelib", "downstream"), level=logging.INFO)
# Powertools' Tracer where the stage has X-Ray (POWERTOOLS_TRACE_DISABLED, config.json), else None.
tracer = observability.tracer()

settings = wiring.settings()


@app.middleware("all")
def observe_invocation(event: Any, get_response: Callable[[Any], Any]) -> Any:
    """Every handler's log lines carry its Lambda context; traced, it is a subsegment."""
    with observability.invocation(event, tracer):
        return get_response(event)


@app.on_s3_event(bucket=settings.source_bucket, events=["s3:ObjectCreated:*"])
def handle_source_file(event: S3Event) -> None:
    budget = wiring.split_budget(event.bucket, event.key, event.context)
    wiring.splitter().split(event.bucket, event.key, budget)


@app.lambda_function(name="release_chunk")
def handle_release_chunk(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return wiring.releaser().release(LoopState.from_json(event)).to_json()


@app.on_s3_event(bucket=settings.process_bucket, events=["s3:ObjectCreated:*"])
def handle_released_chunk(event: S3Event) -> None:
    wiring.enqueuer().enqueue_chunk(event.bucket, event.key)


@app.on_sqs_message(
    queue=settings.send_queue,
    batch_size=settings.sender_batch_size,
    maximum_batching_window_in_seconds=settings.sender_batching_window_seconds,
    maximum_concurrency=settings.sender_max_concurrency,
)
def handle_send_batch(event: SQSEvent) -> None:
    rows = (QueuedRow.from_json(json.loads(r.body)) for r in event)
    wiring.sender().send_batch(rows, ends_at=wiring.invocation_end(event.context))


# Downstream: each sink reads the response topic through a queue of its own.


@app.on_sqs_message(
    queue=settings.archive_queue, batch_size=1000, maximum_batching_window_in_seconds=30
)
def handle_archive_batch(event: SQSEvent) -> None:
    sinks.archive().write(envelopes_of(r.body for r in event))


@app.on_sqs_message(
    queue=settings.results_queue, batch_size=100, maximum_batching_window_in_seconds=5
)
def handle_results_batch(event: SQSEvent) -> None:
    wiring.results().record(envelopes_of(r.body for r in event))


# Ten responses an invocation, no batching window: a systemic error pauses its job at once
# (docs/decisions/router-batches.md).
@app.on_sqs_message(queue=settings.router_queue, batch_size=10)
def handle_router_batch(event: SQSEvent) -> None:
    sinks.router().route(envelopes_of(r.body for r in event))


@app.on_sqs_message(queue=settings.suppression_queue, batch_size=10)
def handle_suppression_events(event: SQSEvent) -> None:
    suppress(wiring.suppression(), events_of(r.body for r in event))


@app.on_sqs_message(queue=settings.systemic_queue, batch_size=10)
def handle_systemic_events(event: SQSEvent) -> None:
    sinks.systemic().handle(events_of(r.body for r in event))


@app.schedule(Rate(1, unit=Rate.MINUTES))
def handle_reconcile(event: Any) -> None:
    sinks.reconciler().run()


# The REST API (chalicelib/api/jobs.py, chalicelib/api/status.py; described in openapi.yaml). The
# job routes need an API key or IAM credentials, by stage; Twilio's callback only its signature.

job_auth = route_auth(settings)


@app.route("/jobs", methods=["POST"], **job_auth)
def handle_create_job() -> Any:
    return wiring.jobs_api().create(app.current_request)


@app.route("/jobs/plan", methods=["POST"], **job_auth)
def handle_plan_job() -> Any:
    return wiring.plan_api().plan(app.current_request)


@app.route("/jobs/uploads", methods=["POST"], **job_auth)
def handle_stage_upload() -> Any:
    return wiring.staged_api().upload(app.current_request)


@app.route("/jobs", methods=["GET"], **job_auth)
def handle_list_jobs() -> Any:
    return wiring.jobs_api().recent(app.current_request)


@app.route("/jobs/{job_id}", methods=["GET"], **job_auth)
def handle_get_job(job_id: str) -> Any:
    return wiring.jobs_api().status(job_id)


@app.route("/jobs/{job_id}/cancel", methods=["POST"], **job_auth)
def handle_cancel_job(job_id: str) -> Any:
    return wiring.jobs_api().cancel(job_id)


@app.route("/jobs/{job_id}/pause", methods=["POST"], **job_auth)
def handle_pause_job(job_id: str) -> Any:
    return wiring.jobs_api().pause(job_id)


@app.route("/jobs/{job_id}/resume", methods=["POST"], **job_auth)
def handle_resume_job(job_id: str) -> Any:
    return wiring.jobs_api().resume(job_id)


@app.route("/jobs/{job_id}/rate", methods=["POST"], **job_auth)
def handle_set_job_rate(job_id: str) -> Any:
    return wiring.rate_api().set_rate(job_id, app.current_request)


@app.route("/suppression", methods=["GET"], **job_auth)
def handle_export_suppression() -> Any:
    return wiring.suppression_api().export(app.current_request)


@app.route("/suppression/import", methods=["POST"], content_types=["text/csv"], **job_auth)
def handle_import_suppression() -> Any:
    return wiring.suppression_api().import_csv(app.current_request)


@app.route("/jobs/{job_id}/retry", methods=["POST"], **job_auth)
def handle_retry_job(job_id: str) -> Any:
    return wiring.retry_api().retry(job_id, app.current_request)


@app.route("/twilio/status", methods=["POST"], content_types=["application/x-www-form-urlencoded"])
def handle_status_callback() -> Any:
    return wiring.status_callbacks().respond(app.current_request)


# The same callbacks past API Gateway: through this function's Lambda function URL
# (.chalice/infrastructure.yaml), where new messages ask for them; the route above serves those
# sent before.
@app.lambda_function(name="status_callback_url")
def handle_status_callback_url(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return wiring.callback_function().respond(event)


@app.route("/twilio/inbound", methods=["POST"], content_types=["application/x-www-form-urlencoded"])
def handle_inbound_message() -> Any:
    return wiring.inbound_messages().respond(app.current_request)


# The web console (chalicelib/console/): static files, no data; its pages call the routes above
# with the API key the person gives.


@app.route("/console", methods=["GET"])
def handle_console_page() -> Any:
    return console.asset("index.html")


@app.route("/console/{name}", methods=["GET"])
def handle_console_asset(name: str) -> Any:
    return console.asset(name)
