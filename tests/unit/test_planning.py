from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.aws.send_queue import SendQueue
from chalicelib.config import ConfigError
from chalicelib.core.records import QueuedRow
from chalicelib.core.schedule import (
    VISIBLE_EARLY_SECONDS,
    Schedule,
    delay_seconds,
    iso_timestamp,
    visible_early_seconds,
)


@pytest.mark.parametrize(
    ("cps", "window", "rows", "chunks", "last_chunk_rows"),
    [
        (1, 900, 900, 1, 900),  # exactly one window at 1 CPS
        (1, 900, 901, 2, 1),  # one row over
        (3, 900, 2700, 1, 2700),  # exactly one window at 3 CPS
        (3, 900, 2701, 2, 1),
        (3, 3, 10, 2, 1),
        (50, 3, 300, 2, 150),
        (1, 1, 1, 1, 1),
    ],
)
def test_schedule_chunk_counts(
    cps: int, window: int, rows: int, chunks: int, last_chunk_rows: int
) -> None:
    schedule = Schedule(cps, window)
    assert schedule.chunk_count(rows) == chunks
    in_last = sum(1 for i in range(rows) if schedule.chunk_of(i) == chunks - 1)
    assert in_last == last_chunk_rows


def test_schedule_offsets_at_3_cps() -> None:
    schedule = Schedule(3, 900)
    assert [schedule.offset(i) for i in range(4)] == [0.0, 1 / 3, 2 / 3, 1.0]
    assert schedule.offset(2699) == pytest.approx(899.6667, abs=1e-4)
    assert schedule.chunk_of(2699) == 0
    assert schedule.chunk_of(2700) == 1
    assert schedule.offset(2700) == schedule.chunk_start(1) == 900.0


def test_schedule_eta_is_last_rows_offset() -> None:
    assert Schedule(1, 900).eta_seconds(901) == 900.0
    assert Schedule(10, 60).eta_seconds(0) == 0.0


@pytest.mark.parametrize(("cps", "window"), [(0, 10), (1, 0), (1, 901)])
def test_schedule_rejects_bad_settings(cps: int, window: int) -> None:
    with pytest.raises(ConfigError):
        Schedule(cps, window)


@given(
    cps=st.integers(1, 500),
    window=st.integers(1, 900),
    index=st.integers(0, 10_000_000),
)
def test_schedule_row_delay_within_its_chunk_is_below_window(
    cps: int, window: int, index: int
) -> None:
    # Released at its chunk's start, a row's delay is in [0, window): always a valid SQS delay.
    schedule = Schedule(cps, window)
    chunk = schedule.chunk_of(index)
    delay = schedule.offset(index) - schedule.chunk_start(chunk)
    assert 0 <= delay < window


def test_delay_seconds_rounds_down_and_clamps() -> None:
    assert delay_seconds(100.9, 100.0) == 0
    assert delay_seconds(101.999, 100.0) == 1
    assert delay_seconds(90.0, 100.0) == 0
    assert delay_seconds(5000.0, 0.0) == 900


def test_iso_timestamp_has_milliseconds_in_utc() -> None:
    assert iso_timestamp(0.25) == "1970-01-01T00:00:00.250Z"
    parsed = datetime.fromisoformat(iso_timestamp(1_800_000_000.5).replace("Z", "+00:00"))
    assert parsed.timestamp() == 1_800_000_000.5


@pytest.mark.parametrize(("window", "lead"), [(1, 10), (3, 10), (890, 10), (895, 5), (900, 0)])
def test_schedule_release_lead_keeps_delays_within_sqs_ceiling(window: int, lead: int) -> None:
    schedule = Schedule(7, window)
    assert schedule.lead_seconds == lead
    # The last row of a chunk, released early by the lead, still has a valid SQS delay.
    last = schedule.chunk_size - 1
    assert schedule.offset(last) - schedule.release_at(0) <= 900
    assert schedule.release_at(2) == 2 * window - lead


def test_a_longer_batching_window_makes_rows_visible_that_much_earlier() -> None:
    assert visible_early_seconds(1) == VISIBLE_EARLY_SECONDS == 2.0
    assert visible_early_seconds(0) == 2.0
    assert visible_early_seconds(5) == 6.0


class Sqs:
    """Records the delays the send queue asks for."""

    def __init__(self) -> None:
        self.delays: list[int] = []

    def get_queue_url(self, QueueName: str) -> dict[str, str]:
        return {"QueueUrl": f"https://sqs.example/{QueueName}"}

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.delays.extend(e["DelaySeconds"] for e in Entries)
        return {}


@pytest.mark.parametrize(("window", "delay"), [(1, 8), (5, 4)])
def test_the_send_queue_delays_a_row_until_its_lead_before_it_is_due(
    window: int, delay: int
) -> None:
    sqs = Sqs()
    queue = SendQueue(
        sqs,  # type: ignore[arg-type]
        "send",
        "dlq",
        clock=lambda: 1000.0,
        visible_early=visible_early_seconds(window),
    )
    queue.enqueue([QueuedRow("job", 1, "messages", {"To": "+14155550100"}, 1010.0)])
    assert sqs.delays == [delay]
