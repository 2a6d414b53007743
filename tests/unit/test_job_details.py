"""What a job's rows wait for, its ETA and its timing as the API shows it
(chalicelib.core.job_details), and how the commands word them (callqueue.cli.progress)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callqueue.cli.progress import Snapshot, plain_line, wait_text
from callqueue.cli.progress import waiting_for as view_waits
from callqueue.client.records import JobStatus, JobSummary
from callqueue.report import JobTotals
from chalicelib.core.job_details import eta_seconds, timing_view, utc_iso, waiting_for
from chalicelib.core.jobs import TRANSITIONS, Job
from chalicelib.core.schedule import Schedule

NOW = datetime(2026, 12, 7, 3, 30, tzinfo=UTC).timestamp()
# 10 CPS, 60-second windows: a job releasing at its rate has its next slot within 70 s.
PACED = Schedule(10, 60).lead_seconds + 60


def job(state: str = "running", **fields: Any) -> Job:
    base: dict[str, Any] = {
        "job_id": "j-1",
        "bucket": "b",
        "key": "k",
        "etag": "e",
        "state": state,
        "cps": 10,
        "window_seconds": 60,
        "created_at": NOW - 100,
        "rows": 100,
        "valid": 100,
        "started_at": NOW - 50,
    }
    return Job(**{**base, **fields})


def test_waiting_for_a_scheduled_job_before_its_start_is_the_start() -> None:
    later = job("scheduled", start_at=NOW + 3600, started_at=NOW + 3600, next_slot_at=NOW + 3600)
    assert waiting_for(later, NOW) == "start"
    # Its start came and its window is shut: it waits for the window, still scheduled.
    shut = replace(later, send_window="08:00-21:00", send_days="mon-fri")
    assert waiting_for(shut, NOW + 3601) is None  # its next slot is now
    assert waiting_for(replace(shut, next_slot_at=NOW + 5 * 3600), NOW + 3601) == "send window"


def test_waiting_for_says_window_or_cap_only_beyond_the_jobs_pace() -> None:
    windowed = job(send_window="08:00-21:00", send_days="mon-sun", next_slot_at=NOW + PACED)
    assert waiting_for(windowed, NOW) is None
    assert waiting_for(replace(windowed, next_slot_at=NOW + PACED + 1), NOW) == "send window"
    capped = job(max_per_day=5, next_slot_at=NOW + 3600)
    assert waiting_for(capped, NOW) == "daily cap"


def test_waiting_for_a_windowed_job_at_its_cap_counts_the_day_in_the_accounts_zone() -> None:
    # 03:30 UTC is still the 6th in New York.
    counts = json.dumps({"2026-12-06": 5, "2026-12-07": 1})
    both = job(
        send_window="08:00-21:00",
        send_days="mon-sun",
        max_per_day=5,
        day_counts=counts,
        next_slot_at=NOW + 3600,
    )
    assert waiting_for(both, NOW) == "send window"
    assert waiting_for(both, NOW, ZoneInfo("America/New_York")) == "daily cap"


@pytest.mark.parametrize("state", [s for s in TRANSITIONS if s not in ("scheduled", "running")])
def test_waiting_for_nothing_in_a_state_that_releases_nothing(state: str) -> None:
    assert waiting_for(job(state, send_window="08:00-21:00", next_slot_at=NOW + 9999), NOW) is None


@given(
    ahead=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    cps=st.integers(1, 500),
    window=st.integers(1, 900),
)
def test_waiting_for_a_running_job_exactly_when_its_next_slot_is_beyond_one_window(
    ahead: float, cps: int, window: int
) -> None:
    running = job(
        cps=cps, window_seconds=window, send_window="09:00-17:00", next_slot_at=NOW + ahead
    )
    beyond = ahead > Schedule(cps, window).lead_seconds + window
    assert (waiting_for(running, NOW) == "send window") is beyond
    assert (timing_view(running, NOW)["next_window"] is not None) is beyond


def test_eta_of_a_scheduled_job_counts_from_its_start() -> None:
    later = job("scheduled", start_at=NOW + 3600, started_at=NOW + 3600, next_slot_at=NOW + 3600)
    # 100 rows at 10 CPS: the last is due 9.9 s after the start.
    assert eta_seconds(later, NOW) == pytest.approx(3609.9)


def test_eta_after_releases_counts_the_rows_left_from_the_next_slot() -> None:
    # A rate change or a pause moved the cursor: the start no longer tells.
    half = job(released_rows=60, next_slot_at=NOW + 100, cps=20)
    assert eta_seconds(half, NOW) == pytest.approx(100 + 39 / 20)
    out = job("released", released_rows=100, next_slot_at=NOW + 2)
    assert eta_seconds(out, NOW) == pytest.approx(2 - 0.1)
    assert eta_seconds(replace(out, next_slot_at=NOW - 60), NOW) == 0.0


@pytest.mark.parametrize(
    ("changes", "account_capped"),
    [
        ({"send_window": "08:00-21:00"}, False),
        ({"send_days": "mon-fri", "send_window": "00:00-24:00"}, False),
        ({"max_per_day": 1000}, False),
        ({}, True),
        ({"state": "paused"}, False),
        ({"state": "splitting"}, False),
        ({"state": "completed"}, False),
        ({"started_at": None}, False),
    ],
)
def test_eta_is_null_when_only_a_plan_could_tell_or_nothing_is_sent(
    changes: dict[str, Any], account_capped: bool
) -> None:
    assert eta_seconds(job(**changes), NOW, account_capped=account_capped) is None


def test_timing_view_shows_the_settings_in_utc_and_the_next_window_only_while_waiting() -> None:
    waiting = job(
        start_at=NOW - 50,
        send_window="08:00-21:00",
        send_days="mon-fri",
        max_per_day=500,
        released_rows=20,
        next_slot_at=NOW + 3600,
        next_release_at=NOW + 3590,
    )
    assert timing_view(waiting, NOW) == {
        "start_at": "2026-12-07T03:29:10Z",
        "send_window": "08:00-21:00",
        "send_days": "mon-fri",
        "max_per_day": 500,
        "released_rows": 20,
        "waiting_for": "send window",
        "next_release_at": "2026-12-07T04:29:50Z",
        "next_window": "2026-12-07T04:30:00Z",
    }
    assert timing_view(replace(waiting, state="paused"), NOW)["next_release_at"] is None
    plain = timing_view(job(), NOW)
    assert (plain["start_at"], plain["waiting_for"], plain["next_window"]) == (None, None, None)
    assert utc_iso(None) is None


def test_wait_text_words_a_start_and_a_window() -> None:
    start = datetime(2026, 12, 7, 14, 0, 30, tzinfo=UTC).timestamp()
    assert (
        wait_text("start", start, start - 10, start - 7200)
        == "scheduled, starts 2026-12-07 14:00 UTC (in 2h00m)"
    )
    assert (
        wait_text("send window", None, start, start - 90)
        == "waiting for send window, next release 2026-12-07 14:00 UTC (in 1m30s)"
    )
    assert wait_text("daily cap", None, None, start) == "waiting for daily cap"
    assert wait_text(None, start, start, start) == ""


def test_the_progress_line_says_what_every_job_waits_for_and_no_eta_for_a_window() -> None:
    waits = JobTotals(
        "j-1", "a.csv", "running", 10, {}, waiting_for="send window", next_release_at=NOW + 60
    )
    going = JobTotals("j-2", "b.csv", "running", 10, {}, starts_at=NOW - 1)
    snapshot = Snapshot([waits], 0, NOW)
    assert (
        view_waits(snapshot)
        == "waiting for send window, next release 2026-12-07 03:31 UTC (in 1m00s)"
    )
    assert plain_line(snapshot, 10).endswith("ETA unknown; " + view_waits(snapshot))
    # While another job sends, the run is not waiting.
    assert view_waits(Snapshot([waits, going], 0, NOW)) == ""


def test_client_records_read_the_timing_and_ignore_what_is_not_a_time() -> None:
    body = {
        "job_id": "j-1",
        "state": "scheduled",
        "start_at": "2026-12-07T14:00:00Z",
        "waiting_for": "start",
        "next_release_at": "2026-12-07T13:59:50Z",
    }
    status = JobStatus.from_api(body)
    start = datetime(2026, 12, 7, 14, tzinfo=UTC).timestamp()
    assert (status.start_at, status.waiting_for, status.next_release_at) == (
        start,
        "start",
        start - 10,
    )
    assert JobSummary.from_api(body).start_at == start
    for bad in ("tomorrow", "2026-12-07T14:00:00", 5, None):
        assert JobStatus.from_api({**body, "start_at": bad}).start_at is None
