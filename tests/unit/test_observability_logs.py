"""Structured logs with the Lambda context, the job and the row; Powertools' Tracer where tracing
is on (and aws_xray_sdk not even imported where it is off)."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice.app import Request, SQSEvent

from chalicelib import observability
from chalicelib.observability import bound, configure_logging, invocation, tracer

REPO = Path(__file__).resolve().parents[2]


def test_json_log_lines_carry_the_bound_job_and_row(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stdout", stream)
    name = "chalicelib.test_observability"
    configure_logging((name,), json_lines=True)
    logger = logging.getLogger(name)
    try:
        with bound(job_id="job-1"):
            logger.info("splitting")
            with bound(row=7):
                logger.warning("row %d late", 7)
        logger.info("outside")
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "splitting"
    assert first["job_id"] == "job-1"
    assert "row" not in first
    assert (second["job_id"], second["row"], second["level"]) == ("job-1", 7, "WARNING")
    assert second["message"] == "row 7 late"
    assert "job_id" not in third


# The Lambda context on every log line of an invocation.


class FakeLambdaContext:
    """The attributes and method of the context object the Python runtime passes (AWS Lambda
    Developer Guide, "Using the Lambda context object to retrieve Python function information")."""

    def __init__(self, function_name: str, request_id: str, memory: int = 512) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        )
        self.memory_limit_in_mb = memory
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "2026/12/06/[$LATEST]abcdef"
        self.identity = None
        self.client_context = None

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def sqs_event(context: FakeLambdaContext) -> SQSEvent:
    record = {"messageId": "m-1", "receiptHandle": "r-1", "body": "{}", "attributes": {}}
    return SQSEvent({"Records": [record]}, context)


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A project logger writing JSON lines to a buffer, as in Lambda; a fresh process's state."""
    stream = io.StringIO()
    name = "chalicelib.test_observability"
    original = sys.stdout
    sys.stdout = stream
    try:
        configure_logging((name,), json_lines=True)
    finally:
        sys.stdout = original
    logger = logging.getLogger(name)
    observability.reset_invocations()
    try:
        yield logger, stream
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
        observability.reset_invocations()


def read(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    stream.seek(0)
    stream.truncate()
    return lines


def test_an_invocation_puts_its_lambda_context_on_every_line_of_every_thread(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = json_log
    context = FakeLambdaContext("callqueue-prod-handle_send_batch", "req-1")
    with invocation(sqs_event(context)):
        logger.info("batch")
        with bound(job_id="job-1"):
            # A thread the handler starts (the sender's call pool) logs with the invocation's
            # context, though not with this thread's bound job.
            worker = threading.Thread(target=logger.warning, args=("from a worker",))
            worker.start()
            worker.join()
            logger.info("row")
    logger.info("after the invocation")

    batch, from_worker, row, after = read(stream)
    expected = {
        "function_name": "callqueue-prod-handle_send_batch",
        "function_request_id": "req-1",
        "function_memory_size": 512,
        "function_arn": "arn:aws:lambda:us-east-1:123456789012:function:"
        "callqueue-prod-handle_send_batch",
        "cold_start": True,
    }
    for line in (batch, from_worker, row):
        assert {k: line[k] for k in expected} == expected
    assert row["job_id"] == "job-1"
    assert "job_id" not in from_worker
    assert from_worker["message"] == "from a worker"
    # Outside an invocation no line claims one.
    assert not {"function_name", "function_request_id", "cold_start"} & set(after)


def test_only_the_first_invocation_of_a_process_is_a_cold_start(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = json_log
    for request in ("req-1", "req-2", "req-3"):
        with invocation(sqs_event(FakeLambdaContext("fn", request))):
            logger.info("handled")
    lines = read(stream)
    assert [(x["function_request_id"], x["cold_start"]) for x in lines] == [
        ("req-1", True),
        ("req-2", False),
        ("req-3", False),
    ]


def test_provisioned_concurrency_is_never_a_cold_start(
    json_log: tuple[logging.Logger, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, stream = json_log
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "provisioned-concurrency")
    with invocation(sqs_event(FakeLambdaContext("fn", "req-1"))):
        logger.info("handled")
    assert read(stream)[0]["cold_start"] is False


def test_a_rest_request_gives_its_lambda_context_not_api_gateways(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = json_log
    event = {
        "multiValueQueryStringParameters": None,
        "headers": {},
        "pathParameters": None,
        "requestContext": {"httpMethod": "GET", "resourcePath": "/jobs", "requestId": "apigw-1"},
        "stageVariables": None,
        "body": None,
        "isBase64Encoded": False,
    }
    request = Request(event, FakeLambdaContext("callqueue-prod", "req-api"))
    with invocation(request):
        logger.info("listing")
    (line,) = read(stream)
    assert (line["function_name"], line["function_request_id"]) == ("callqueue-prod", "req-api")


def test_an_invocation_without_a_context_adds_nothing_and_still_runs(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    """Chalice hands the middleware no request for an event it could not route."""
    logger, stream = json_log
    with invocation(None):
        logger.info("unroutable")
    (line,) = read(stream)
    assert "function_name" not in line


def test_a_context_with_fewer_attributes_gives_the_fields_it_has(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    """The local runtime's context has no ARN; Chalice's has no memory without a stage's."""
    logger, stream = json_log

    class Sparse:
        function_name = "callqueue-dev-release_chunk"
        aws_request_id = "req-local"
        memory_limit_in_mb = None

    with invocation(SQSEvent({"Records": []}, Sparse())):
        logger.info("released")
    (line,) = read(stream)
    assert line["function_name"] == "callqueue-dev-release_chunk"
    assert line["function_request_id"] == "req-local"
    assert "function_arn" not in line
    assert "function_memory_size" not in line


def test_an_exception_leaves_no_context_behind(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = json_log
    with (
        pytest.raises(ValueError, match="boom"),
        invocation(sqs_event(FakeLambdaContext("f", "r"))),
    ):
        raise ValueError("boom")
    logger.info("next")
    assert "function_name" not in read(stream)[0]


# Tracing: on in Lambda unless disabled, and then aws_xray_sdk is not even imported.

LAMBDA_ENV = {"AWS_LAMBDA_FUNCTION_NAME": "callqueue-prod-handle_send_batch"}


@pytest.mark.parametrize(
    "env",
    [
        {},
        {**LAMBDA_ENV, "POWERTOOLS_TRACE_DISABLED": "true"},
        {**LAMBDA_ENV, "POWERTOOLS_TRACE_DISABLED": "1"},
        {**LAMBDA_ENV, "AWS_CHALICE_CLI_MODE": "true"},
    ],
    ids=["not in Lambda", "disabled", "disabled as 1", "chalice local"],
)
def test_no_tracer_where_tracing_is_off(env: dict[str, str]) -> None:
    assert tracer(env) is None


def test_the_app_has_no_tracer_in_tests_and_never_imports_the_xray_sdk() -> None:
    """The Lambda way with X-Ray off (the dev stage): in a fresh interpreter, nothing imports
    aws_xray_sdk or patches botocore."""
    script = textwrap.dedent(
        """
        import os, sys
        os.environ.update(AWS_LAMBDA_FUNCTION_NAME="fn", LAMBDA_TASK_ROOT="/var/task",
                          POWERTOOLS_TRACE_DISABLED="true")
        from chalicelib import observability
        assert observability.tracer() is None
        observability.configure_logging(("chalicelib",), json_lines=True)
        with observability.invocation(None):
            pass
        print(sorted(m for m in sys.modules if m.startswith("aws_xray_sdk")))
        """
    )
    result = run_python(script)
    assert result == "[]"


def run_python(script: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_a_traced_invocation_is_a_subsegment_annotated_with_cold_start_service_and_job() -> None:
    """Powertools' Tracer, as in Lambda with X-Ray on (a sampled trace header), in a fresh
    interpreter (the X-Ray SDK's state is global); its emitter collects what would go to the
    daemon. Patching is left out here: it cannot be undone in a process."""
    script = textwrap.dedent(
        """
        import json, os
        os.environ.update(
            AWS_LAMBDA_FUNCTION_NAME="fn", LAMBDA_TASK_ROOT="/var/task",
            POWERTOOLS_SERVICE_NAME="callqueue",
            _X_AMZN_TRACE_ID="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        )
        from chalice.app import SQSEvent
        from chalicelib import observability
        from tests.unit.test_observability_logs import FakeLambdaContext

        sent = []

        class Collect:
            def send_entity(self, entity):
                sent.append(json.loads(entity.serialize()))

            def set_daemon_address(self, address):
                pass

            ip, port = "127.0.0.1", 2000

        tracer = observability.tracer(patch_modules=())
        tracer.provider.configure(emitter=Collect())
        for request in ("req-1", "req-2"):
            event = SQSEvent({"Records": []}, FakeLambdaContext("callqueue-prod-fn", request))
            try:
                with observability.invocation(event, tracer):
                    with observability.bound(job_id="job-" + request):
                        if request == "req-2":
                            raise RuntimeError("the handler failed")
            except RuntimeError:
                pass
        with observability.bound(job_id="outside"):
            pass
        print(json.dumps(sent))
        """
    )
    first, second = json.loads(run_python(script))
    assert first["name"] == second["name"] == "## callqueue-prod-fn"
    assert first["trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert first["annotations"] == {
        "ColdStart": True,
        "Service": "callqueue",
        "job_id": "job-req-1",
    }
    assert second["annotations"] == {
        "ColdStart": False,
        "Service": "callqueue",
        "job_id": "job-req-2",
    }
    assert "fault" not in first
    assert second["fault"] is True
    assert second["cause"]["exceptions"][0]["message"] == "the handler failed"
