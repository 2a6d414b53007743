"""The sender's suppression reads: how many, and that no call is made on a look older than
the bound (docs/decisions/immediate-suppression.md).

The ledger and the rate limiter are the real ones on moto's DynamoDB; the suppression list is a
table in memory that records each read and when it was made; Twilio, the queue and the topic
are the recorders of tests/handlers/test_dispatch.py. The clock moves only when the sender
sleeps or a call takes time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from chalicelib.core.records import QueuedRow
from chalicelib.sending.dispatcher import READ_ANSWERS_SECONDS
from chalicelib.sending.ledger import CallLedger
from chalicelib.sending.pacing import DISPATCH_TICK_SECONDS
from chalicelib.sending.parts import SenderParts, SenderSettings
from chalicelib.sending.sender import Sender
from chalicelib.sending.suppression import MAX_BATCH_GET
from tests.handlers.test_dispatch import T0, Clock, Recorder, Twilio, recording_limiter
from tests.tables import create_ledger_table, create_rate_table

LATE_TOLERANCE = 0.1
# The clock is shared by the dispatcher's thread and the call's: the dispatcher's sleep (a tick
# at most) can move it between a call's last check and the record of it.
SHARED_CLOCK_SLACK = DISPATCH_TICK_SECONDS


class CheckedTwilio(Twilio):
    """Twilio's recorder, also noting the clock when the sender's last check before each call
    passed (the hold the gateway runs just before it sends): what the sender's bound is about.
    Twilio's own record comes after, and the shared clock may have moved in between while the
    machine held the thread up (the outcome writes to moto, in this process, take the CPU)."""

    def __init__(self, clock: Clock, latency: float) -> None:
        super().__init__(clock, latency)
        self.checked: list[tuple[float, int]] = []

    def call(
        self,
        request: Any,
        hold: Callable[[], None] | None = None,
        written: Callable[[float], None] | None = None,
    ) -> Any:
        def checked() -> None:
            if hold is not None:
                hold()
            self.checked.append((self.clock(), request.row))

        return super().call(request, checked, written)


class Suppressions:
    """The list: number -> when it was suppressed. Each look records (when, numbers asked)."""

    def __init__(self, clock: Clock, fail_first: int = 0) -> None:
        self.clock = clock
        self.since: dict[str, float] = {}
        self.consistent: list[tuple[float, set[str]]] = []
        self.early: list[tuple[float, set[str]]] = []
        self._fail = fail_first

    def read(self, numbers: set[str]) -> set[str]:
        if self._fail:
            self._fail -= 1
            raise ConnectionError("DynamoDB could not be reached")
        now = self.clock()
        self.consistent.append((now, set(numbers)))
        return {n for n in numbers if self.since.get(n, math.inf) <= now}

    def read_early(self, numbers: set[str]) -> set[str]:
        self.early.append((self.clock(), set(numbers)))
        return set()  # as stale as it may be: it knows of nothing

    def keys_read(self) -> list[str]:
        return [n for _, numbers in self.consistent for n in numbers]


@contextmanager
def tables() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_rate_table(client, "rate")
        create_ledger_table(client, "ledger")
        yield client


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with tables() as client:
        yield client


def run(
    dynamodb: Any,
    numbers: list[str],
    *,
    rate: float,
    latency: float = 0.0,
    overshoot: float = 0.0,
    suppress_at: dict[str, float] | None = None,
    fail_first: int = 0,
) -> tuple[CheckedTwilio, Recorder, Suppressions, list[float]]:
    """One batch of rows to `numbers` (row i+1 to numbers[i]), all due at T0 + 0.5."""
    clock = Clock(overshoot)
    limiter, handed_out = recording_limiter(dynamodb, rate, clock)
    table = Suppressions(clock, fail_first)
    table.since.update(suppress_at or {})
    twilio = CheckedTwilio(clock, latency)
    recorder = Recorder()
    parts = SenderParts(
        lambda: twilio,  # type: ignore[arg-type,return-value]
        recorder,  # type: ignore[arg-type]
        recorder,  # type: ignore[arg-type]
        CallLedger(dynamodb, "ledger", in_doubt_after=30.0, clock=clock),
        suppressed=table.read,
        suppressed_early=table.read_early,
        limiter=limiter,
        clock=clock,
        sleep=clock.sleep,
    )
    settings_ = SenderSettings(
        max_attempts=3, concurrency=1, late_tolerance=LATE_TOLERANCE, visible_early=2.0
    )
    rows = [
        QueuedRow("job", i, "messages", {"To": number, "Body": "x"}, T0 + 0.5)
        for i, number in enumerate(numbers, start=1)
    ]
    Sender(parts, settings_).send_batch(rows)
    return twilio, recorder, table, handed_out


def assert_every_call_was_read_fresh(
    twilio: CheckedTwilio, table: Suppressions, numbers: list[str], rate: float
) -> None:
    """The guarantee: each call's number was read (strongly consistent) before the call, and
    at most FRESH_READ_SECONDS before the slot it went at, by the sender's last check before
    sending: within READ_ANSWERS_SECONDS of the read, and as late for its slot as the pacer
    allows (LATE_TOLERANCE, and never more than one slot at the run's rate)."""
    assert sorted(row for _, row in twilio.checked) == sorted(row for _, row in twilio.calls)
    for checked, row in twilio.checked:
        number = numbers[row - 1]
        reads = [at for at, asked in table.consistent if number in asked and at <= checked]
        assert reads, f"row {row} was called without a read"
        # The clock adds binary fractions: a gap of exactly the bound may come out a hair over.
        late = min(LATE_TOLERANCE, 1 / rate)
        bound = READ_ANSWERS_SECONDS + late + SHARED_CLOCK_SLACK
        assert checked - max(reads) <= bound + 1e-6


def distinct(count: int) -> list[str]:
    return [f"+1415555{i:04d}" for i in range(count)]


def test_a_batch_reads_each_distinct_number_once_a_booking_however_many_rows_go_to_it(
    dynamodb: Any,
) -> None:
    # 200 rows, two to each of 100 numbers, next to each other: the rows slotted together
    # are read together, one strongly consistent look per number, never a key twice; the
    # early look asks for each number once too.
    numbers = [n for n in distinct(100) for _ in range(2)]
    twilio, _, table, slots = run(dynamodb, numbers, rate=100)

    assert len(twilio.calls) == 200
    assert set(table.keys_read()) == set(numbers)
    if len(slots) == len(twilio.calls):  # no call missed its slot: each number read once
        assert sorted(table.keys_read()) == sorted(set(numbers))
    else:  # a call held up past its read's bound (a busy machine) took a slot, read again
        assert len(table.keys_read()) <= len(slots)
    assert all(len(asked) <= MAX_BATCH_GET for _, asked in table.consistent)
    assert [asked for _, asked in table.early] == [set(numbers)]
    assert_every_call_was_read_fresh(twilio, table, numbers, 100)


def test_rows_waiting_ticks_for_a_slot_are_read_once_each_not_at_every_tick(
    dynamodb: Any,
) -> None:
    # At 4 CPS ten rows due together wait up to 2.5 s for their slots: 25 ticks. Each is read
    # once, when its slot is booked, never at the ticks it waited through.
    numbers = distinct(10)
    twilio, _, table, slots = run(dynamodb, numbers, rate=4)

    assert len(twilio.calls) == 10
    assert sorted(table.keys_read()) == sorted(numbers)
    assert len(table.keys_read()) <= len(slots)
    assert_every_call_was_read_fresh(twilio, table, numbers, 4)


def test_a_missed_slot_reads_again_only_past_the_fresh_window(dynamodb: Any) -> None:
    # Each call takes half a second: every next row misses its slot and takes another one
    # (tests/handlers/test_dispatch.py). Its number is read again for the new slot only when
    # the old read is too old for it, and never more than once a slot handed out.
    numbers = distinct(4)
    twilio, _, table, slots = run(dynamodb, numbers, rate=100, latency=0.5)

    assert [row for _, row in twilio.calls] == [1, 2, 3, 4]
    assert len(slots) > 4  # slots were missed
    assert len(table.keys_read()) <= len(slots)
    assert_every_call_was_read_fresh(twilio, table, numbers, 100)


def test_a_number_suppressed_while_its_row_waits_for_a_slot_is_not_called(
    dynamodb: Any,
) -> None:
    # The batch's early look (and its claim) found nothing; the STOP is recorded 0.3 s later,
    # while row 6 waits for its slot at 4 CPS: its read, once the slot is booked, sees it.
    numbers = distinct(10)
    stopped = numbers[5]
    twilio, recorder, _, _ = run(dynamodb, numbers, rate=4, suppress_at={stopped: T0 + 0.8})

    assert 6 not in {row for _, row in twilio.calls}
    assert len(twilio.calls) == 9
    outcomes = {e["row"]: e["outcome"] for e in recorder.published}
    assert outcomes[6] == "suppressed"


def test_a_number_suppressed_later_stops_every_later_row_to_it_without_more_reads(
    dynamodb: Any,
) -> None:
    # Rows 1, 4, 7 and 10 go to one number, suppressed between row 1's call and row 4's slot.
    numbers = distinct(10)
    for i in (3, 6, 9):
        numbers[i] = numbers[0]
    twilio, recorder, table, _ = run(dynamodb, numbers, rate=4, suppress_at={numbers[0]: T0 + 0.9})

    called = {row for _, row in twilio.calls}
    assert 1 in called and not called & {4, 7, 10}
    outcomes = {e["row"]: e["outcome"] for e in recorder.published}
    assert [outcomes[r] for r in (4, 7, 10)] == ["suppressed"] * 3
    found = [at for at, asked in table.consistent if numbers[0] in asked and at >= T0 + 0.9]
    assert len(found) == 1  # once seen suppressed, known for the rest of the batch


def test_rows_are_not_called_while_the_list_cannot_be_read(dynamodb: Any) -> None:
    # The first three reads fail: the rows whose slots they were for are not called on the
    # batch's early look; they take slots again and go once a read succeeds.
    numbers = distinct(5)
    twilio, recorder, table, _ = run(dynamodb, numbers, rate=100, fail_first=3)

    assert sorted(row for _, row in twilio.calls) == [1, 2, 3, 4, 5]
    assert_every_call_was_read_fresh(twilio, table, numbers, 100)
    assert recorder.later == []


@settings(max_examples=15, deadline=None)
@given(
    picks=st.lists(st.integers(0, 5), min_size=1, max_size=12),
    rate=st.sampled_from([3.0, 10.0, 100.0]),
    latency=st.sampled_from([0.0, 0.05, 0.3]),
    stop_after=st.floats(0.0, 3.0),
)
def test_no_call_is_made_on_a_read_older_than_the_bound_nor_after_a_stop_it_saw(
    picks: list[int], rate: float, latency: float, stop_after: float
) -> None:
    numbers = [f"+1415555{p:04d}" for p in picks]
    stop = numbers[0]
    stop_at = T0 + stop_after
    with tables() as dynamodb:
        twilio, _, table, slots = run(
            dynamodb, numbers, rate=rate, latency=latency, suppress_at={stop: stop_at}
        )

    assert_every_call_was_read_fresh(twilio, table, numbers, rate)
    # No call to the number after a read that saw it suppressed.
    saw = [at for at, asked in table.consistent if stop in asked and at >= stop_at]
    if saw:
        assert all(t < min(saw) for t, row in twilio.calls if numbers[row - 1] == stop)
    assert len(table.keys_read()) <= len(slots)
