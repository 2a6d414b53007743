"""Send windows, scheduled starts and daily caps, end to end through the splitter and the release
step against moto, with an injected clock: every row released is due inside its recipient's
local window (checked against each zone's wall clock, independently of the code under test),
across a daylight-saving change; a window opening for 10,000 rows keeps the rate; caps roll over
at midnight in the account's zone; a scheduled job cancelled before its start releases nothing
before it and ends its rows."""

from __future__ import annotations

import csv
import io
import itertools
import json
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from chalice.test import Client

from callqueue.local.emulator import TwilioEmulator
from chalicelib import wiring
from chalicelib.aws.daily_counts import DailyCounts
from chalicelib.config import Settings
from chalicelib.core.jobs import Job
from chalicelib.core.schedule import Schedule
from chalicelib.core.slices import Group, groups_json
from chalicelib.core.windows import DAY_NAMES
from chalicelib.intake.splitter import Splitter
from chalicelib.release.releaser import LoopState, Releaser
from chalicelib.release.resume import resume
from tests.handlers.test_pipeline import drain_responses, queued, sqs_event, subscribe_responses
from tests.stack import Stack

FROM = "+15005550006"
# One number per place, and the zone its local hours are kept in.
PLACES = {
    "+442079460000": "Europe/London",
    "+12125550100": "America/New_York",
    "+14155550100": "America/Los_Angeles",
    "+61291234567": "Australia/Sydney",
    "+81312345678": "Asia/Tokyo",
}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class NoLoop:
    """The release loop's executions: the splitter's first start is recorded; the test drives
    the steps itself."""

    def __init__(self) -> None:
        self.states: list[dict[str, Any]] = []

    def start(self, job_id: str, state: dict[str, Any], generation: int = 0) -> bool:
        self.states.append(state)
        return True

    def running(self, job_id: str) -> bool:
        return False


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def csv_of(numbers: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["To", "From", "Body"])
    writer.writerows([n, FROM, f"hello {i}"] for i, n in enumerate(numbers))
    return out.getvalue().encode()


@dataclass
class Released:
    row: int
    due: float
    chunk: str


def split(stack: Stack, clock: Clock, key: str, body: bytes, **metadata: str) -> Job:
    stack.s3.put_object(Bucket=stack.env["SOURCE_BUCKET"], Key=key, Body=body, Metadata=metadata)
    splitter = Splitter(
        wiring.storage(),
        wiring.jobs(),
        NoLoop(),  # type: ignore[arg-type]
        Settings.from_env(),
        claims=wiring.content_claims(),
        clock=clock,
    )
    job = splitter.split(stack.env["SOURCE_BUCKET"], key)
    assert job is not None, key
    return job


def releaser(clock: Clock, **options: Any) -> Releaser:
    settings = Settings.from_env()
    return Releaser(
        wiring.storage(),
        wiring.jobs(),
        settings.holding_bucket,
        settings.process_bucket,
        loop=NoLoop(),  # type: ignore[arg-type]
        clock=clock,
        **options,
    )


def run_loop(stack: Stack, job: Job, clock: Clock, **options: Any) -> list[LoopState]:
    """Every step of the job's loop, the clock moved to each step's time as the state
    machine's Wait would."""
    step = releaser(clock, **options)
    state = LoopState.first(
        job, now=clock.now, lead=Schedule(job.cps, job.window_seconds).lead_seconds
    )
    states = []
    for _ in range(10_000):
        if state.next_at:
            clock.now = max(clock.now, at(state.next_at.replace("Z", "+00:00")))
        state = step.release(state)
        states.append(state)
        if state.done:
            return states
    raise AssertionError("the loop never ended")


def released(stack: Stack, job_id: str) -> list[Released]:
    """Every row in PROCESS with its due time, from each run's metadata, as the enqueuer
    reads them."""
    out = []
    listed = stack.s3.list_objects_v2(Bucket=stack.env["PROCESS_BUCKET"], Prefix=f"jobs/{job_id}/")
    for item in listed.get("Contents", []):
        got = stack.s3.get_object(Bucket=stack.env["PROCESS_BUCKET"], Key=item["Key"])
        meta = got["Metadata"]
        lines = got["Body"].read().decode().splitlines()
        first, count = int(meta["first"]), int(meta["count"])
        for k, line in enumerate(lines[first : first + count]):
            row = json.loads(line)
            out.append(Released(row["row"], float(meta["at"]) + k / int(meta["cps"]), item["Key"]))
    return out


def local(due: float, zone: str) -> datetime:
    return datetime.fromtimestamp(due, ZoneInfo(zone))


def test_each_zone_is_released_only_inside_its_window_across_a_daylight_saving_change(
    stack: Stack,
) -> None:
    # Friday 2026-03-06 12:00 UTC; the US moves its clocks on Sunday 2026-03-08. One minute a
    # day at 1 CPS takes 60 rows a day: 90 rows per place need Friday and Monday.
    numbers = [n for n in PLACES for _ in range(90)]
    clock = Clock(at("2026-03-06T12:00:00+00:00"))
    job = split(
        stack,
        clock,
        "zones.csv",
        csv_of(numbers),
        cps="1",
        window="60",
        **{"send-window": "09:00-09:01", "send-days": "mon-fri"},
    )
    assert (job.state, job.valid, job.rejected) == ("running", 450, 0)

    run_loop(stack, job, clock)

    rows = released(stack, job.job_id)
    assert sorted(r.row for r in rows) == list(range(1, 451))  # each row once
    by_row = {r.row: r.due for r in rows}
    for row, number in enumerate(numbers, start=1):
        when = local(by_row[row], PLACES[number])
        assert when.weekday() < 5 and (when.hour, when.minute) == (9, 0), (number, when)
    # New York's Friday window is 14:00 UTC (EST), its Monday one 13:00 UTC (EDT).
    new_york = sorted(by_row[r] for r, n in enumerate(numbers, 1) if n == "+12125550100")
    utc = [datetime.fromtimestamp(d, UTC) for d in new_york]
    assert (utc[0].isoformat(), utc[60].isoformat()) == (
        "2026-03-06T14:00:00+00:00",
        "2026-03-09T13:00:00+00:00",
    )
    # London (GMT all the while) opens at 09:00 UTC; Friday's had passed at 12:00, so Monday.
    london = sorted(by_row[r] for r, n in enumerate(numbers, 1) if n == "+442079460000")
    assert datetime.fromtimestamp(london[0], UTC).isoformat() == "2026-03-09T09:00:00+00:00"
    # Never two rows of the job in one second at 1 CPS.
    dues = sorted(by_row.values())
    assert all(b - a >= 1 - 1e-6 for a, b in itertools.pairwise(dues))


def test_a_window_opening_for_10000_rows_keeps_the_rate(stack: Stack) -> None:
    # New York and Toronto open at the same instant: two groups, one rate.
    numbers = [f"+1212{200 + i // 10_000:03d}{i % 10_000:04d}" for i in range(6_000)]
    numbers += [f"+1416{200 + i // 10_000:03d}{i % 10_000:04d}" for i in range(4_000)]
    clock = Clock(at("2026-06-01T09:00:00+00:00"))  # 05:00 in New York
    job = split(
        stack,
        clock,
        "opening.csv",
        csv_of(numbers),
        cps="100",
        window="900",
        **{"send-window": "08:00-21:00"},
    )
    assert job.valid == 10_000

    run_loop(stack, job, clock)

    dues = sorted(r.due for r in released(stack, job.job_id))
    assert len(dues) == 10_000
    assert dues[0] == at("2026-06-01T12:00:00+00:00")  # 08:00 EDT
    # No sliding second holds more than 100, no 100 ms more than 10.
    for span, most in ((1.0, 100), (0.1, 10)):
        j = 0
        for i, due in enumerate(dues):
            while dues[j] <= due - span + 1e-9:
                j += 1
            assert i - j + 1 <= most, (span, due)


def test_the_jobs_cap_rolls_over_at_midnight_in_the_accounts_zone(stack: Stack) -> None:
    clock = Clock(at("2026-12-07T23:59:00-05:00"))
    job = split(
        stack,
        clock,
        "capped.csv",
        csv_of([f"+1415555{i:04d}" for i in range(60)]),
        cps="10",
        window="60",
        **{"max-per-day": "25"},
    )

    run_loop(stack, job, clock, account_zone="America/New_York")

    days = Counter(
        local(r.due, "America/New_York").date().isoformat() for r in released(stack, job.job_id)
    )
    assert days == {"2026-12-07": 25, "2026-12-08": 25, "2026-12-09": 10}
    firsts = sorted(r.due for r in released(stack, job.job_id))
    # The 26th row waits for midnight in New York, not in UTC.
    assert firsts[25] == at("2026-12-08T00:00:00-05:00")


def test_the_accounts_daily_limit_is_shared_by_jobs(stack: Stack) -> None:
    clock = Clock(at("2026-12-07T10:00:00+00:00"))
    daily = DailyCounts(stack.dynamodb, stack.env["JOBS_TABLE"])
    first = split(stack, clock, "a.csv", csv_of([f"+1415555{i:04d}" for i in range(20)]), cps="10")
    second = split(stack, clock, "b.csv", csv_of([f"+1415556{i:04d}" for i in range(20)]), cps="10")

    run_loop(stack, first, clock, daily=daily, daily_limit=30)
    run_loop(stack, second, clock, daily=daily, daily_limit=30)

    days = Counter(
        datetime.fromtimestamp(r.due, UTC).date().isoformat()
        for job in (first, second)
        for r in released(stack, job.job_id)
    )
    assert days == {"2026-12-07": 30, "2026-12-08": 10}
    assert daily.used("2026-12-07") == 30 and daily.used("2026-12-08") == 10


def test_a_scheduled_job_releases_nothing_before_its_start(stack: Stack) -> None:
    clock = Clock(at("2026-12-07T10:00:00+00:00"))
    job = split(
        stack,
        clock,
        "later.csv",
        csv_of(["+14155550100"] * 3),
        cps="10",
        **{"start-at": "2026-12-07T15:00:00Z"},
    )
    assert (job.state, job.start_at) == ("scheduled", at("2026-12-07T15:00:00+00:00"))
    first = LoopState.first(job, now=clock.now, lead=10)
    assert first.next_at == "2026-12-07T14:59:50.000Z"

    run_loop(stack, job, clock)

    dues = sorted(r.due for r in released(stack, job.job_id))
    assert dues[0] == at("2026-12-07T15:00:00+00:00") and len(dues) == 3
    stored = wiring.jobs().get(job.job_id)
    assert stored is not None and stored.state == "released"


def test_a_scheduled_job_cancelled_before_its_start_sends_nothing_and_ends_its_rows(
    stack: Stack,
) -> None:
    clock = Clock(at("2026-12-07T10:00:00+00:00"))
    job = split(
        stack,
        clock,
        "called-off.csv",
        csv_of(["+14155550100"] * 4),
        cps="10",
        **{"start-at": "2026-12-07T15:00:00Z"},
    )
    wiring.jobs().update(job.job_id, state="cancelled")

    # The cancel starts the loop's step at once (chalicelib/api/jobs.py), not at the start.
    state = releaser(clock).release(LoopState(job.job_id))

    assert (state.done, state.stopped) == (True, "cancelled")
    # Every row goes out at once to be ended `cancelled` by the sender (which never calls
    # Twilio for a cancelled job: tests/handlers/test_lifecycle.py).
    assert sorted(r.row for r in released(stack, job.job_id)) == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("metadata", "words"),
    [
        ({"send-window": "25:00-26:00"}, "25:00-26:00"),
        ({"send-days": "funday"}, "funday"),
        ({"start-at": "2026-12-07 09:00"}, "offset"),
        ({"max-per-day": "0"}, "max per day"),
    ],
)
def test_bad_timing_settings_fail_the_job_with_a_reason_naming_them(
    stack: Stack, metadata: dict[str, str], words: str
) -> None:
    clock = Clock(at("2026-12-07T10:00:00+00:00"))
    job = split(stack, clock, "bad.csv", csv_of(["+14155550100"]), **metadata)
    assert job.state == "failed" and job.error is not None and words in job.error


def test_a_number_whose_zones_share_no_time_of_the_window_is_rejected_with_why(
    stack: Stack,
) -> None:
    clock = Clock(at("2026-12-07T10:00:00+00:00"))
    # +1 800 spans Guam to Pago Pago: no hour of 09:00-17:00 is working time in all of them.
    body = csv_of(["+18005550100", "+14155550100"])
    job = split(stack, clock, "tollfree.csv", body, **{"send-window": "09:00-17:00"})
    assert (job.valid, job.rejected) == (1, 1)
    report = stack.s3.get_object(Bucket=stack.env["REPORTS_BUCKET"], Key=job.rejects_key or "")
    [_, [row, reason]] = list(csv.reader(io.StringIO(report["Body"].read().decode())))
    assert row == "1" and "share no time of the send window 09:00-17:00" in reason


def test_a_time_zone_column_overrides_the_numbers_zones(stack: Stack) -> None:
    clock = Clock(at("2026-12-07T10:00:00+00:00"))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerows(
        [
            ["To", "From", "Body", "time_zone"],
            ["+18005550100", FROM, "hi", "America/Chicago"],
            ["+14155550100", FROM, "hi", "Mars/Base"],
        ]
    )
    job = split(stack, clock, "tz.csv", out.getvalue().encode(), **{"send-window": "09:00-17:00"})
    assert (job.valid, job.rejected) == (1, 1)

    run_loop(stack, job, clock)

    [row] = released(stack, job.job_id)
    assert local(row.due, "America/Chicago").hour == 9


@pytest.mark.parametrize(
    ("next_slot_at", "moved"),
    [
        # Rows out until 1,300 when paused at 1,000: the next slice follows them, 500 later.
        (1_300.0, 1_800.0),
        # Every row out was due before the pause: the loop waits for a window opening at 900
        # (past) and starts from now; nothing moves.
        (900.0, 900.0),
    ],
)
def test_resume_moves_the_next_slice_only_behind_rows_the_pause_held(
    stack: Stack, next_slot_at: float, moved: float
) -> None:
    wiring.jobs().create(
        Job(
            "held-1",
            "b",
            "k",
            "e",
            "paused",
            10,
            60,
            1.0,
            rows=9,
            valid=9,
            chunks=3,
            released_chunks=1,
            releases=1,
            started_at=500.0,
            paused_at=1_000.0,
            next_slot_at=next_slot_at,
            next_release_at=next_slot_at - 10,
        )
    )

    resume(wiring.jobs(), "held-1", now=1_500.0)

    job = wiring.jobs().get("held-1")
    assert job is not None and (job.state, job.next_slot_at) == ("running", moved)
    assert job.next_release_at == moved - 10 and job.started_at == 1_000.0


def test_a_job_paused_before_its_start_keeps_it_or_starts_now_if_it_passed(stack: Stack) -> None:
    for job_id, now, expected in (
        ("early-1", 1_200.0, ("scheduled", 2_000.0)),
        ("late-1", 2_600.0, ("running", 2_600.0)),
    ):
        wiring.jobs().create(
            Job(
                job_id,
                "b",
                "k",
                "e",
                "paused",
                10,
                60,
                1.0,
                rows=1,
                valid=1,
                chunks=1,
                started_at=2_000.0,
                start_at=2_000.0,
                paused_at=1_100.0,
                next_slot_at=2_000.0,
                next_release_at=1_990.0,
            )
        )
        resume(wiring.jobs(), job_id, now=now)
        job = wiring.jobs().get(job_id)
        assert job is not None and (job.state, job.next_slot_at) == expected


def test_the_sender_holds_a_row_a_pause_moved_past_its_window(
    stack: Stack, emulator: TwilioEmulator
) -> None:
    """A row released before a pause, moved by it past its window's close, goes back on the
    queue without a call (the window, today, is closed: every day but today is allowed)."""
    import app as app_module

    today = datetime.now(ZoneInfo("America/New_York")).weekday()
    days = ",".join(name for i, name in enumerate(DAY_NAMES) if i != today)
    now = time.time()
    wiring.jobs().create(
        Job(
            "job-1",
            "b",
            "k",
            "e",
            "running",
            10,
            60,
            1.0,
            rows=1,
            valid=1,
            chunks=1,
            started_at=now - 1000.0,
            send_window="00:00-24:00",
            send_days=days,
            groups=groups_json([Group(("America/New_York",), 1, 1)]),
        )
    )
    # Released when the job started 1,800 s earlier: the pause moved it by 800 s, past `until`.
    row = {
        **queued(1, {"To": "+12125550100", "From": FROM, "Body": "held"}),
        "due_at": now - 801.0,
        "job_start": now - 1800.0,
        "until": now - 100.0,
        "group": 0,
    }
    observer = subscribe_responses(stack)
    with Client(app_module.app, stage_name="dev") as client:
        client.lambda_.invoke("handle_send_batch", sqs_event([row]))

    assert drain_responses(stack, observer) == []
    assert emulator.requests == []
    attributes = stack.sqs.get_queue_attributes(
        QueueUrl=stack.send_queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )
    assert attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"
