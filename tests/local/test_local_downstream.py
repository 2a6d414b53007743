"""Downstream end to end on the local runtime: suppression across rows, a job paused by
systemic errors and resumed, and the reconciler's outcome CSV against the runtime's own tally."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from callqueue.local.options import Options
from callqueue.local.runtime import LocalRuntime
from chalicelib import wiring
from chalicelib.release.resume import resume
from tests.stack import subscribe_queue

pytestmark = pytest.mark.e2e

VALID_FROM = "+15005550006"


@pytest.fixture
def runtime() -> Iterator[LocalRuntime]:
    saved = dict(os.environ)
    local = LocalRuntime(Options(cps=10, window_seconds=5))
    local.start()
    try:
        yield local
    finally:
        local.stop()
        os.environ.clear()
        os.environ.update(saved)
        wiring.reset()


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["To", "From", "Body"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def message(i: int, to: str | None = None, sender: str = VALID_FROM) -> dict[str, str]:
    return {"To": to or f"+1415555{i:04d}", "From": sender, "Body": f"row {i}"}


def state(local: LocalRuntime, job_id: str) -> str | None:
    job = local.job(job_id)
    return None if job is None else job.state


def settled(local: LocalRuntime, job_id: str, rows: int) -> bool:
    job = local.job(job_id)
    return job is not None and job.rejected + sum(local.tally.counts(job_id).values()) >= rows


def reconciled(local: LocalRuntime, job_id: str) -> dict[int, tuple[str, str]]:
    job = local.job(job_id)
    assert job is not None and job.outcomes_key
    body = local.client("s3").get_object(Bucket=local.env["REPORTS_BUCKET"], Key=job.outcomes_key)
    text = body["Body"].read().decode()
    return {
        int(r["row"]): (r["outcome"], r["error_code"]) for r in csv.DictReader(io.StringIO(text))
    }


def test_numbers_that_fail_with_stop_landline_or_invalid_are_called_once(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    bad = ["+15005550004", "+15005550009", "+15005550001"]  # 21610, 21614, 21211
    rows = [message(i) for i in range(1, 61)]
    for i, number in enumerate(bad):
        rows[i] = message(i + 1, to=number)
        # The same numbers 5 s later (suppression is asynchronous: the failure goes through the
        # topic and a sink first, which on a loaded machine has taken over 3 s).
        rows[50 + i] = message(51 + i, to=number)
    job = runtime.submit(write_csv(tmp_path / "repeats.csv", rows))

    wait_for(lambda: settled(runtime, job.job_id, 60))
    wait_for(lambda: state(runtime, job.job_id) == "completed")

    outcomes = dict((row, o) for row, o, _ in runtime.tally.rows(job.job_id))
    assert [outcomes[r] for r in (1, 2, 3)] == ["failed"] * 3
    assert [outcomes[r] for r in (51, 52, 53)] == ["suppressed"] * 3
    assert runtime.emulator is not None
    called = [r["params"]["To"] for r in runtime.emulator.requests if r["method"] == "POST"]
    assert all(called.count(number) == 1 for number in bad)
    # The reconciler's outcome CSV says the same as the runtime's own tally, row for row.
    tally = {row: (o, "" if c is None else str(c)) for row, o, c in runtime.tally.rows(job.job_id)}
    assert reconciled(runtime, job.job_id) == tally
    archived = runtime.counter.counts["s3:PutObject"]
    assert 0 < archived < 60  # responses archived in batches, not one object each


def test_bad_from_pauses_the_job_with_an_alert_and_resume_finishes_it(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    sqs = runtime.client("sqs")
    alerts = subscribe_queue(sqs, runtime.client("sns"), runtime.env["ALERT_TOPIC_ARN"], "alerts")
    rows = [message(i, sender="+15005550001") for i in range(1, 11)]
    rows += [message(i) for i in range(11, 41)]
    job = runtime.submit(write_csv(tmp_path / "bad-from.csv", rows))

    wait_for(lambda: state(runtime, job.job_id) == "paused")
    time.sleep(2)
    progress = sum(runtime.tally.counts(job.job_id).values())
    time.sleep(2)
    assert sum(runtime.tally.counts(job.job_id).values()) == progress  # held back while paused
    assert progress < 40
    message_bodies: list[dict[str, Any]] = [
        json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=alerts).get("Messages", [])
    ]
    assert [a["job_id"] for a in message_bodies] == [job.job_id]

    resume(wiring.jobs(), job.job_id, now=time.time())

    wait_for(lambda: settled(runtime, job.job_id, 40), timeout=120)
    counts = runtime.tally.counts(job.job_id)
    assert counts["failed"] == 10 and counts["sent"] == 30
