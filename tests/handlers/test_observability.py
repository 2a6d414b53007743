"""Every handler's log lines carry its Lambda context (Chalice's middleware for all event kinds),
through chalice.test.Client on the moto stack: REST routes, S3 events, a pure Lambda function, SQS
batches and the schedule."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client

from chalicelib import observability, wiring
from tests.envelopes import published
from tests.handlers.test_api import create_and_split, drain, post, queued_rows, rows
from tests.handlers.test_pipeline import sqs_event
from tests.stack import Stack, subscribe_queue

PROJECT_LOGGERS = ("chalicelib", "downstream")


@pytest.fixture
def client(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    import app as app_module

    # No callback URL: a status callback is refused, and says so in a log line.
    monkeypatch.delenv("STATUS_CALLBACK_URL", raising=False)
    wiring.reset()
    # The stage's memory for the splitter, so the context's value is seen to be the function's.
    (tmp_path / ".chalice").mkdir()
    config = {
        "version": "2.0",
        "app_name": "callqueue",
        "lambda_memory_size": 512,
        "stages": {
            "dev": {"lambda_functions": {"handle_source_file": {"lambda_memory_size": 1024}}}
        },
    }
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))
    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


@pytest.fixture
def logged() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The project's loggers as in Lambda (JSON lines on stdout, into a buffer) in a fresh
    process; calling the fixture's value returns the lines written since the last call."""
    stream = io.StringIO()
    original = sys.stdout
    sys.stdout = stream
    try:
        observability.configure_logging(PROJECT_LOGGERS, json_lines=True)
    finally:
        sys.stdout = original
    observability.reset_invocations()

    def since_last() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        stream.seek(0)
        stream.truncate()
        return lines

    try:
        yield since_last
    finally:
        for name in PROJECT_LOGGERS:
            logger = logging.getLogger(name)
            for handler in [h for h in logger.handlers if getattr(h, "callqueue", False)]:
                logger.removeHandler(handler)
            logger.propagate = True
        observability.reset_invocations()


def of(lines: list[dict[str, Any]], function: str) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("function_name") == function]


def one_invocation(lines: list[dict[str, Any]], function: str) -> dict[str, Any]:
    """The context the lines share: every line of one invocation carries the same one."""
    assert lines, f"{function} logged nothing"
    keys = ("function_name", "function_request_id", "function_memory_size", "cold_start")
    contexts = [{k: line[k] for k in keys} for line in lines]
    assert all(c == contexts[0] for c in contexts), contexts
    assert contexts[0]["function_name"] == function
    assert contexts[0]["function_request_id"]
    return contexts[0]


def test_every_kind_of_handler_logs_with_its_lambda_context(
    stack: Stack, client: Client, logged: Callable[[], list[dict[str, Any]]]
) -> None:
    seen: list[dict[str, Any]] = []

    # REST (the API's one function): a refused status callback.
    response = client.http.post(
        "/twilio/status",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=b"MessageSid=SM1",
    )
    assert response.status_code == 403
    lines = logged()
    assert any(line["message"].startswith("status callback refused") for line in lines)
    seen.append(one_invocation(lines, "api_handler"))

    # S3 (the splitter), with the job it works on bound as well.
    job_id = create_and_split(stack, client, {"rows": rows(4), "cps": 1, "window": 2})
    lines = of(logged(), "handle_source_file")
    seen.append(one_invocation(lines, "handle_source_file"))
    assert seen[-1]["function_memory_size"] == 1024
    assert any(line.get("job_id") == job_id for line in lines)

    # A pure Lambda function (the release loop's step), for a cancelled job.
    assert post(client, f"/jobs/{job_id}/cancel").status_code == 200
    logged()
    job = wiring.jobs().get(job_id)
    assert job is not None and job.started_at is not None
    loop = {"job_id": job_id, "chunk": 0, "chunks": 2, "start": job.started_at}
    client.lambda_.invoke("release_chunk", {**loop, "window": 2, "cps": 1})
    # The moto stack's state machine runs the same step in a thread of its own (as
    # callqueue-dev-release_chunk); each invocation's lines keep their own context.
    lines = logged()
    assert all("function_name" in line for line in lines)
    seen.append(one_invocation(of(lines, "release_chunk"), "release_chunk"))

    # SQS: the sender ends the cancelled rows, the sinks record them (none of them logs);
    # the systemic handler hears of a job it does not know.
    responses = subscribe_queue(stack.sqs, stack.sns, stack.env["RESPONSE_TOPIC_ARN"], "seen")
    process = stack.env["PROCESS_BUCKET"]
    keys = sorted(o["Key"] for o in stack.s3.list_objects_v2(Bucket=process)["Contents"])
    queued = [row for key in keys for row in queued_rows(stack, process, key, job)]
    client.lambda_.invoke("handle_send_batch", sqs_event(queued))
    envelopes = published(drain(stack, responses))
    assert len(envelopes) == 4
    client.lambda_.invoke("handle_results_batch", sqs_event(envelopes))
    client.lambda_.invoke("handle_router_batch", sqs_event(envelopes))
    logged()
    unknown = {"detail-type": "TwilioError", "detail": {"job_id": "nobody", "ErrorCode": 21212}}
    client.lambda_.invoke("handle_systemic_events", sqs_event([unknown]))
    lines = logged()
    assert [line["message"] for line in lines] == ["systemic errors for unknown job nobody"]
    seen.append(one_invocation(lines, "handle_systemic_events"))

    # The schedule: the reconciler writes the cancelled job's outcomes.
    client.lambda_.invoke(
        "handle_reconcile", client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [])
    )
    lines = logged()
    assert f"job {job_id} completed" in [line["message"] for line in lines]
    seen.append(one_invocation(lines, "handle_reconcile"))

    # Each invocation its own request id; only this process's first was a cold start.
    assert len({c["function_request_id"] for c in seen}) == len(seen)
    assert [c["cold_start"] for c in seen] == [True] + [False] * (len(seen) - 1)
