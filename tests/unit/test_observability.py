"""Structured logs with the job and row, and metrics as CloudWatch embedded metric format."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from chalicelib.observability import Metrics, bound, configure_logging, record_responses


def emf(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]


def test_metrics_flush_one_emf_document_per_second_and_dimensions() -> None:
    lines: list[str] = []
    metrics = Metrics("dev", sink=lines.append, clock=lambda: 100.5)
    metrics.count("Calls", 2)
    metrics.count("Calls")
    metrics.count("Outcomes", at=101.2, Outcome="sent")
    metrics.timing("TwilioRequestDuration", 0.25)
    assert metrics.flush() == 2
    first, second = emf(lines)
    assert first["_aws"]["Timestamp"] == 100_000
    directive = first["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "callqueue"
    assert directive["Dimensions"] == [["Stage"]]
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
        "Calls": "Count",
        "TwilioRequestDuration": "Milliseconds",
    }
    assert first["Stage"] == "dev"
    assert first["Calls"] == 3
    assert first["TwilioRequestDuration"] == 250.0
    assert second["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Outcome", "Stage"]]
    assert second["Outcome"] == "sent"
    assert second["Outcomes"] == 1
    # Flushed means forgotten: the next flush writes nothing.
    assert metrics.flush() == 0


def test_metrics_split_more_than_a_hundred_values() -> None:
    lines: list[str] = []
    metrics = Metrics("dev", sink=lines.append, clock=lambda: 5.0)
    for i in range(150):
        metrics.measure("ScheduleLag", i / 100, "Seconds")
    assert metrics.flush() == 2
    documents = emf(lines)
    assert [len(d["ScheduleLag"]) for d in documents] == [100, 50]


def test_record_responses_counts_calls_outcomes_errors_and_twilio_headers() -> None:
    lines: list[str] = []
    metrics = Metrics("prod", sink=lines.append, clock=lambda: 0.0)
    sent = {
        "outcome": "sent",
        "api": "messages",
        "status": 201,
        "error": None,
        "headers": {"Twilio-Request-Duration": "0.040", "Twilio-Concurrent-Requests": "3"},
        "timings": {"started_at": 10.2, "lag_seconds": 0.1},
    }
    throttled = {
        **sent,
        "outcome": "retrying",
        "status": 429,
        "error": {"code": 20429},
        "headers": {},
        "timings": {"started_at": 10.7, "lag_seconds": 0.3},
    }
    suppressed = {"outcome": "suppressed", "api": "messages", "status": None, "timings": {}}
    record_responses(metrics, [sent, throttled, {**suppressed, "timings": {"started_at": 10.9}}])
    metrics.flush()
    by_dims: dict[tuple[str, ...], dict[str, Any]] = {}
    for document in emf(lines):
        dims = tuple(document["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0])
        key = dims + tuple(str(document[d]) for d in dims if d != "Stage")
        by_dims[key] = document
    stage = by_dims[("Stage",)]
    assert stage["Calls"] == 2
    assert stage["Errors"] == 1
    assert stage["Throttled"] == 1
    assert stage["TwilioRequestDuration"] == 40.0
    assert stage["TwilioConcurrentRequests"] == 3.0
    assert stage["ScheduleLag"] == [0.1, 0.3]
    assert by_dims[("ErrorCode", "Stage", "20429")]["Errors"] == 1
    assert by_dims[("Outcome", "Stage", "suppressed")]["Outcomes"] == 1
    assert by_dims[("Api", "Stage", "messages")]["Calls"] == 2


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
