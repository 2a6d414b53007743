"""`callqueue suppression`, `dlq` and `resume` against a stack (moto, in-process)."""

from __future__ import annotations

import json
import random

import pytest

from callqueue.cli import main
from chalicelib import wiring
from chalicelib.core.jobs import Job
from chalicelib.core.outcomes import backoff_seconds
from tests.stack import Stack


def test_suppression_add_list_remove(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["suppression", "add", "+14155550100", "--reason", "asked us to stop"]) == 0
    assert main(["suppression", "add", "+14155550100"]) == 0
    assert main(["suppression", "list"]) == 0
    out = capsys.readouterr().out
    assert "+14155550100: suppressed" in out and "already suppressed" in out
    assert "+14155550100\tasked us to stop" in out
    assert main(["suppression", "remove", "+14155550100"]) == 0
    assert wiring.suppression().suppressed({"+14155550100"}) == set()


@pytest.mark.parametrize(
    "typed", ["+1 415 555 0100", "+1 (415) 555-0100", "+1.415.555.0100", " +14155550100 "]
)
def test_suppression_stores_a_typed_number_as_the_sender_compares_it(
    stack: Stack, capsys: pytest.CaptureFixture[str], typed: str
) -> None:
    assert main(["suppression", "add", typed]) == 0
    assert wiring.suppression().suppressed({"+14155550100"}) == {"+14155550100"}
    assert main(["suppression", "remove", typed]) == 0
    assert wiring.suppression().suppressed({"+14155550100"}) == set()


def test_suppression_reads_national_numbers_in_the_default_region(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEFAULT_REGION", "us")
    assert main(["suppression", "add", "(415) 555-0100"]) == 0
    assert wiring.suppression().suppressed({"+14155550100"}) == {"+14155550100"}


@pytest.mark.parametrize("typed", ["+1234567", "+4420794609", "415 555 0100", "call me"])
def test_suppression_refuses_a_number_twilio_would_refuse_in_one_line(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, typed: str
) -> None:
    monkeypatch.delenv("DEFAULT_REGION", raising=False)
    assert main(["suppression", "add", typed]) != 0
    err = capsys.readouterr().err
    assert "phone number" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert list(wiring.suppression().list()) == []


def test_dlq_list_shows_why_and_redrive_puts_rows_back(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {
        "job_id": "job-1",
        "row": 7,
        "api": "messages",
        "params": {"To": "+14155550100", "From": "+15005550006", "Body": "x"},
        "due_at": 1.0,
        "attempt": 5,
        "last_error": {"status": 429, "code": 21611},
    }
    stack.sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=json.dumps(body))

    assert main(["dlq", "list"]) == 0
    assert "job-1\trow 7\tattempt 5\tHTTP 429 code 21611" in capsys.readouterr().out
    assert main(["dlq", "redrive"]) == 0
    assert "1 row(s) put back" in capsys.readouterr().out

    [message] = stack.sqs.receive_message(QueueUrl=stack.send_queue_url)["Messages"]
    redriven = json.loads(message["Body"])
    assert (redriven["row"], redriven["attempt"]) == (7, 1)
    assert stack.sqs.receive_message(QueueUrl=stack.dlq_url).get("Messages") is None


def test_resume_continues_a_paused_job_and_refuses_a_running_one(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    wiring.jobs().create(
        Job(
            "job-1",
            "b",
            "k",
            "e",
            "paused",
            10,
            60,
            1.0,
            chunks=1,
            released_chunks=1,
            started_at=10.0,
            paused_at=20.0,
        )
    )
    assert main(["resume", "job-1"]) == 0
    assert "job-1: resumed" in capsys.readouterr().out
    job = wiring.jobs().get("job-1")
    assert job is not None and job.state == "released"
    assert main(["resume", "job-1"]) == 2
    assert "not paused" in capsys.readouterr().err


def test_backoff_ceiling_doubles_per_attempt_up_to_the_cap() -> None:
    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b  # the ceiling itself

    ceilings = [backoff_seconds(n, base=2.0, cap=20.0, rng=Top()) for n in range(1, 6)]
    assert ceilings == [2.0, 4.0, 8.0, 16.0, 20.0]
    draws = {backoff_seconds(3, rng=random.Random(seed)) for seed in range(20)}
    assert all(0 <= d <= 8 for d in draws) and len(draws) == 20  # full jitter
