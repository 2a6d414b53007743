"""A split that outlasts its invocation, through the splitter against moto: it stops at
checkpoints, continues in later deliveries of its upload and ends as a split in one go does (the
job's counts, groups, cost and content hash, its chunks and its rejects); a continuation
delivered twice goes on once. The invocation's remaining time is injected."""

from __future__ import annotations

from typing import Any

from chalicelib import wiring
from chalicelib.aws.continuation import upload_event
from chalicelib.intake.checkpoint import Budget
from tests.handlers.test_intake_edges import Clock, StartedLoops, job_item, make_splitter, put
from tests.stack import Stack
from tests.unit.test_split_checkpoint import Remaining

FROM = "+15005550006"


def body(count: int) -> bytes:
    lines = ["To,From,Body,reference"]
    for i in range(count):
        to = "12345" if i % 9 == 4 else f"+1{['212', '415', '808'][i % 3]}2{i:06d}"
        lines.append(f"{to},{FROM},hello {i},ref-{i}")
    return ("\n".join(lines) + "\n").encode()


def stored(stack: Stack, bucket: str, job_id: str) -> dict[str, bytes]:
    """A job's objects by name within the job (its checkpoints are under checkpoints/)."""
    found = stack.s3.list_objects_v2(Bucket=bucket, Prefix=f"jobs/{job_id}/").get("Contents", [])
    return {
        item["Key"].split("/", 2)[2]: stack.s3.get_object(Bucket=bucket, Key=item["Key"])[
            "Body"
        ].read()
        for item in found
    }


COUNTED = ("rows", "valid", "rejected", "chunks", "groups", "estimated_cost", "content_sha256")


def test_a_split_in_continuations_ends_as_one_split_does(stack: Stack) -> None:
    source = stack.env["SOURCE_BUCKET"]
    data = body(300)
    put(stack, "once.csv", data, window="5", cps="2", **{"send-window": "08:00-21:00"})
    put(
        stack,
        "parts.csv",
        data,
        window="5",
        cps="2",
        resend="true",
        **{"send-window": "08:00-21:00"},
    )
    loops = StartedLoops()
    once = make_splitter(loops, Clock()).split(source, "once.csv")
    continued: list[str] = []
    budget = Budget(Remaining(4), lambda: continued.append("go"), reserve_ms=1, check_every=10)
    splitter = make_splitter(loops, Clock())
    job = splitter.split(source, "parts.csv", budget)
    invocations = 1
    while continued:
        continued.pop()
        job = splitter.split(source, "parts.csv", budget)
        invocations += 1
    assert once is not None and job is not None
    assert invocations >= 3
    assert job.state == once.state == "running"
    mine, theirs = job_item(stack, job.job_id), job_item(stack, once.job_id)
    assert {k: mine.get(k) for k in COUNTED} == {k: theirs.get(k) for k in COUNTED}
    assert int(mine["rejected"]) > 0 and int(mine["chunks"]) > 3
    for bucket in (stack.env["HOLDING_BUCKET"], stack.env["REPORTS_BUCKET"]):
        assert stored(stack, bucket, job.job_id) == stored(stack, bucket, once.job_id)
    assert loops.started == [once.job_id, job.job_id]


def test_a_continuation_delivered_twice_goes_on_once(stack: Stack) -> None:
    source = stack.env["SOURCE_BUCKET"]
    put(stack, "twice.csv", body(60), window="5", cps="2")
    loops = StartedLoops()
    continued: list[str] = []
    splitter = make_splitter(loops, Clock())
    budget = Budget(Remaining(3), lambda: continued.append("go"), reserve_ms=1, check_every=10)
    first = splitter.split(source, "twice.csv", budget)
    assert first is not None and continued == ["go"]
    jobs = wiring.jobs()
    part, prefix = jobs.split_progress(first.job_id)
    assert part == 1 and prefix is not None
    # Two deliveries of part 1's continuation: the second finds part 1 taken up by the first.
    assert jobs.advance_split(first.job_id, 1, prefix + "x", 0.0) is True
    assert jobs.advance_split(first.job_id, 1, prefix, 0.0) is False
    assert jobs.split_progress(first.job_id) == (2, prefix + "x")


def test_the_continuation_event_is_the_upload_s_event() -> None:
    from chalice.app import S3Event

    event: Any = upload_event("bucket", "dir/a file+1.csv")
    read = S3Event(event, None)
    assert (read.bucket, read.key) == ("bucket", "dir/a file+1.csv")


def test_a_continuation_with_too_little_time_left_fails_the_job_with_its_reason(
    stack: Stack,
) -> None:
    # Each part re-reads the records before it: a part with time for only a few more would be
    # followed by parts with time for none. The job fails, saying why, instead of continuing
    # until an invocation is killed re-reading.
    source = stack.env["SOURCE_BUCKET"]
    put(stack, "huge.csv", body(300), window="5", cps="2")
    loops = StartedLoops()
    continued: list[str] = []
    splitter = make_splitter(loops, Clock())
    first = Budget(Remaining(20), lambda: continued.append("go"), reserve_ms=1, check_every=10)
    job = splitter.split(source, "huge.csv", first)
    assert job is not None and job.state == "splitting" and continued == ["go"]
    starved = Budget(
        lambda: 0,
        lambda: continued.append("go"),
        reserve_ms=1,
        check_every=10,
        progress_checked_from=100,
    )
    job = splitter.split(source, "huge.csv", starved)

    assert job is not None and job.state == "failed"
    assert "too large to split" in (job.error or "")
    assert continued == ["go"] and loops.started == []
