"""The sender's dispatcher: account slots taken just before the calls, on an injected clock.

The ledger and the rate limiter are the real ones on moto's DynamoDB; Twilio, the queue and the
topic are recorders. The clock moves only when the sender sleeps or a call takes time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.core.records import QueuedRow, TwilioResult
from chalicelib.core.schedule import visible_early_seconds
from chalicelib.sending.ledger import CallLedger
from chalicelib.sending.limiter import RateLimiter
from chalicelib.sending.pacing import DISPATCH_TICK_SECONDS
from chalicelib.sending.parts import FINISH_SECONDS, SenderParts, SenderSettings
from chalicelib.sending.sender import Sender
from chalicelib.twilio.gateway import LookupFailed
from tests.tables import create_ledger_table, create_rate_table

T0 = 1_000_000.0


class Clock:
    def __init__(self, overshoot: float = 0.0) -> None:
        self.now = T0
        self._lock = threading.Lock()
        self._overshoot = overshoot  # every sleep ends this much late, as on a busy machine

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += max(0.0, seconds) + self._overshoot


class Twilio:
    """Answers 201 after `latency` seconds of the injected clock; records when each call came."""

    def __init__(self, clock: Clock, latency: float) -> None:
        self.clock = clock
        self.latency = latency
        self.calls: list[tuple[float, int]] = []

    def write_delay(self, row: int) -> float:
        """How long the request's write takes after the last check (none here)."""
        return 0.0

    def call(
        self,
        request: Any,
        hold: Callable[[], None] | None = None,
        written: Callable[[float], None] | None = None,
    ) -> TwilioResult:
        if hold is not None:
            hold()  # as the gateway does once the request is built
        started = self.clock()
        self.calls.append((started, request.row))
        if written is not None:
            written(started + self.write_delay(request.row))  # as the gateway's transport does
        self.clock.sleep(self.latency)
        return TwilioResult(201, {"sid": f"SM{request.row}"}, {}, started, self.clock())


class Recorder:
    def __init__(self) -> None:
        self.later: list[tuple[QueuedRow, float]] = []
        self.published: list[dict[str, Any]] = []

    def retry_later(self, rows: list[tuple[QueuedRow, float]]) -> None:
        self.later.extend(rows)

    def dead_letter(self, rows: Any) -> None:
        raise AssertionError("nothing is dead-lettered here")

    def publish(self, envelopes: list[dict[str, Any]]) -> None:
        self.published.extend(envelopes)


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_rate_table(client, "rate")
        create_ledger_table(client, "ledger")
        yield client


def recording_limiter(dynamodb: Any, rate: float, clock: Clock) -> tuple[RateLimiter, list[float]]:
    """The account's limiter at `rate`, and the list of every slot it hands out, as handed out."""
    limiter = RateLimiter(dynamodb, "rate", rate=rate, clock=clock)
    handed_out: list[float] = []
    schedule = limiter.schedule

    def recording(due: Any, horizon: float, granted: Any = None) -> list[float | None]:
        slots = schedule(due, horizon, granted)
        handed_out.extend(s for s in slots if s is not None)
        return slots

    limiter.schedule = recording  # type: ignore[method-assign]
    return limiter, handed_out


def run(
    dynamodb: Any,
    rows: int,
    *,
    rate: float,
    latency: float,
    due: float = T0 + 0.5,
    jobs: Callable[[Clock], Any] = lambda _: None,
    twilio_class: type[Twilio] = Twilio,
    recorder: Recorder | None = None,
    overshoot: float = 0.0,
    in_doubt_after: float = 30.0,
    visible_early: float = 2.0,
    ends_at: float | None = None,
    attempt: int = 1,
) -> tuple[Twilio, Recorder, list[float]]:
    clock = Clock(overshoot)
    limiter, handed_out = recording_limiter(dynamodb, rate, clock)
    twilio = twilio_class(clock, latency)
    recorder = recorder or Recorder()
    parts = SenderParts(
        lambda: twilio,  # type: ignore[arg-type,return-value]
        recorder,  # type: ignore[arg-type]
        recorder,  # type: ignore[arg-type]
        CallLedger(dynamodb, "ledger", in_doubt_after=in_doubt_after, clock=clock),
        jobs=lambda _: jobs(clock),
        limiter=limiter,
        clock=clock,
        sleep=clock.sleep,
    )
    settings = SenderSettings(
        max_attempts=3, concurrency=1, late_tolerance=0.1, visible_early=visible_early
    )
    sender = Sender(parts, settings)
    batch = [
        QueuedRow(
            "job", i, "messages", {"To": f"+1415555{i:04d}", "Body": "x"}, due, attempt=attempt
        )
        for i in range(1, rows + 1)
    ]
    sender.send_batch(batch, ends_at=ends_at)
    return twilio, recorder, handed_out


def test_each_call_goes_at_its_own_slot_in_due_order(dynamodb: Any) -> None:
    twilio, recorder, slots = run(dynamodb, 5, rate=100, latency=0.0)

    assert [row for _, row in twilio.calls] == [1, 2, 3, 4, 5]
    assert [t for t, _ in twilio.calls] == pytest.approx(slots)
    assert len(set(slots)) == 5 and min(slots) >= T0 + 0.5  # none before the rows are due
    assert {e["row"] for e in recorder.published} == {1, 2, 3, 4, 5}
    assert recorder.later == []


def test_a_call_whose_thread_ran_late_takes_a_later_slot_instead_of_calling_late(
    dynamodb: Any,
) -> None:
    # One call in flight at a time, each taking half a second: every next row reaches its slot
    # long after it passed, so it is given a fresh one, never called late for the old one.
    twilio, recorder, slots = run(dynamodb, 4, rate=100, latency=0.5)

    assert [row for _, row in twilio.calls] == [1, 2, 3, 4]
    for started, _ in twilio.calls:
        assert any(0 <= started - slot <= 0.1 for slot in slots)
    assert len(slots) > 4  # the missed slots were given up, not used late
    assert recorder.later == [] and len(recorder.published) == 4


def test_a_call_may_go_late_for_its_slot_within_one_slot(dynamodb: Any) -> None:
    # Every sleep ends 7 ms late. At 100 CPS the slots are 10 ms apart: each call goes late
    # for its own slot (up to 7 ms), within SLOT_TOLERANCE_SECONDS (0.1 here) and one slot.
    twilio, recorder, slots = run(dynamodb, 3, rate=100, latency=0.0, overshoot=0.007)

    assert len(twilio.calls) == 3 and len(slots) == 3  # no slot missed
    for (started, _), slot in zip(twilio.calls, slots, strict=True):
        assert 0 < started - slot <= 0.007 + 1e-6
    assert recorder.later == []


def test_a_call_never_goes_more_than_one_slot_late(dynamodb: Any) -> None:
    # At 200 CPS the slots are 5 ms apart: a call 7 ms late would bunch with the next slot's,
    # so it is not made and takes another slot, again and again; at its call deadline (1 s
    # after the claim here) the row goes back on the queue. (One row: only its own hold moves
    # the clock between a slot's booking and its check.)
    twilio, recorder, slots = run(
        dynamodb, 1, rate=200, latency=0.0, overshoot=0.007, in_doubt_after=2.0
    )

    assert twilio.calls == [] and len(slots) > 1
    assert [r.row for r, _ in recorder.later] == [1]


@pytest.mark.parametrize("late_row", [1, 2, 4])
def test_after_a_call_written_late_the_next_calls_go_later_never_closer(
    dynamodb: Any, late_row: int
) -> None:
    # At 100 CPS (slots 10 ms apart, a budget of 15 ms: the 10 ms tolerance and 5 ms of write
    # jitter) one call's write ends 50 ms after its check: it may reach Twilio in a 100 ms its
    # neighbours' slots fill. No later call of the sender goes within 100 ms of that write;
    # every row is still called, each at a slot of its own, none before it.
    class SlowWrite(Twilio):
        def write_delay(self, row: int) -> float:
            return 0.05 if row == late_row else 0.0

    twilio, recorder, slots = run(dynamodb, 6, rate=100, latency=0.0, twilio_class=SlowWrite)

    called = dict((row, t) for t, row in twilio.calls)
    assert sorted(called) == [1, 2, 3, 4, 5, 6]
    written = called[late_row] + 0.05
    after = [t for row, t in called.items() if t > called[late_row]]
    assert after and all(t >= written + 0.1 - 1e-9 for t in after)
    assert all(any(0 <= t - s <= 0.01 for s in slots) for t in called.values())
    assert len(set(slots)) == len(slots) and recorder.later == []


def test_a_call_written_within_the_budget_changes_nothing(dynamodb: Any) -> None:
    class JustInTime(Twilio):
        def write_delay(self, row: int) -> float:
            return 0.0149  # within the budget: the 10 ms tolerance and the 5 ms write jitter

    twilio, _, slots = run(dynamodb, 5, rate=100, latency=0.0, twilio_class=JustInTime)

    assert [t for t, _ in twilio.calls] == pytest.approx(slots)  # no slot given up


def test_rows_without_a_slot_before_the_call_deadline_go_back_on_the_queue(
    dynamodb: Any,
) -> None:
    # Each call takes 10 s: after two calls the claims are older than half the in-doubt time
    # (15 s), so the other two rows go back with their claims given back.
    twilio, recorder, _ = run(dynamodb, 4, rate=100, latency=10.0)

    called = {row for _, row in twilio.calls}
    back = {r.row for r, _ in recorder.later}
    assert len(twilio.calls) == 2 and called | back == {1, 2, 3, 4} and not called & back
    ledger = CallLedger(dynamodb, "ledger", in_doubt_after=30.0)
    for row in back:  # given back: open to the row's next delivery
        assert ledger.claim("job", row, 1).verdict == "call"


@pytest.mark.parametrize("ends_in", [15.0, 16.0, 17.3, 30.0])
def test_a_batch_starts_no_call_later_than_its_finish_time_before_the_invocation_ends(
    dynamodb: Any, ends_in: float
) -> None:
    # 20 rows at 10 a second from T0 + 0.5; Lambda ends the invocation `ends_in` seconds after
    # T0, and the last 15 s are the batch's to finish in (a call's read timeout, then writing
    # and publishing). Rows whose slots come later go back, their claims given back, rather
    # than be cut off mid-batch by the timeout.
    ends_at = T0 + ends_in
    twilio, recorder, _ = run(dynamodb, 20, rate=10, latency=0.0, ends_at=ends_at)

    called = [row for _, row in twilio.calls]
    back = [row.row for row, _ in recorder.later]
    assert sorted(called + back) == list(range(1, 21))  # every row called or put back, once
    # Slots are taken a tick ahead: a row slotted just before the cut-off calls within a tick.
    # The injected clock is moved on by every thread's sleep (the loop's and the call's), so
    # between the loop's reading of it and the booking it may pass one tick more.
    cut_off = ends_at - FINISH_SECONDS
    assert all(t <= cut_off + 2 * DISPATCH_TICK_SECONDS + 1e-9 for t, _ in twilio.calls)
    if ends_in >= 15.0 + 0.5 + 2.0:
        assert back == []  # time enough for all of them
    if ends_in <= 15.0:
        assert called == []
    ledger = CallLedger(dynamodb, "ledger", in_doubt_after=30.0)
    for row in back:  # open to the row's next delivery
        assert ledger.claim("job", row, 1).verdict == "call"


@pytest.mark.parametrize("ends_in", [None, 15.0, 29.9, 60.0])
def test_a_row_in_doubt_is_looked_up_only_with_time_left_for_the_look_up_and_the_finish(
    dynamodb: Any, ends_in: float | None
) -> None:
    # Three rows claimed 100 s ago and never recorded: in doubt (30 s). A look-up takes up to
    # its read timeout (15 s) and the batch 15 s more to finish: with less than 30 s left the
    # rows go back unasked (no doubt counted), to be taken over once the in-doubt time passes.
    ledger = CallLedger(dynamodb, "ledger", in_doubt_after=30.0, clock=lambda: T0 - 100.0)
    for row in (1, 2, 3):
        assert ledger.claim("job", row, 1).verdict == "call"
    asked: list[int] = []

    class Asked(Twilio):
        def look_up(self, request: Any, since: float, **_: Any) -> Any:
            asked.append(request.row)
            raise LookupFailed("Twilio did not answer")

    ends_at = None if ends_in is None else T0 + ends_in
    twilio, recorder, _ = run(
        dynamodb, 3, rate=100, latency=0.0, twilio_class=Asked, ends_at=ends_at
    )

    assert twilio.calls == []  # never called blindly
    back = sorted((r.row, r.doubts, round(d, 3)) for r, d in recorder.later)
    if ends_in is not None and ends_in < 30.0:
        assert asked == [] and back == [(1, 0, 31.0), (2, 0, 31.0), (3, 0, 31.0)]
    else:  # asked, Twilio did not answer: a doubt counted, and asked again later
        assert sorted(set(asked)) == [1, 2, 3] and back == [
            (1, 1, 31.0),
            (2, 1, 31.0),
            (3, 1, 31.0),
        ]


def test_the_invocations_end_is_lambdas_remaining_time_on_the_senders_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chalicelib import wiring

    monkeypatch.setattr(wiring.time, "time", lambda: T0)
    context = SimpleNamespace(get_remaining_time_in_millis=lambda: 41_250)
    assert wiring.invocation_end(context) == T0 + 41.25
    assert wiring.invocation_end(None) is None  # a handler called without Lambda's context


def test_a_job_paused_while_its_batch_calls_stops_within_a_second(dynamodb: Any) -> None:
    # 20 rows metered 10 a second: the job is paused 0.7 s into the calls. The batch looks at
    # the job again within a second; the calls already slotted go, the rest go back.
    def job(clock: Clock) -> Any:
        return SimpleNamespace(state="paused") if clock() >= T0 + 1.2 else None

    twilio, recorder, _ = run(dynamodb, 20, rate=10, latency=0.0, jobs=job)

    called = [row for _, row in twilio.calls]
    assert 5 <= len(called) < 20
    assert max(t for t, _ in twilio.calls) < T0 + 1.2 + 1.0 + 0.3  # a look, plus a tick ahead
    back = sorted(row.row for row, _ in recorder.later)
    assert sorted(called + back) == list(range(1, 21))  # every row called or put back, once


def test_a_slow_publish_of_the_first_outcomes_does_not_hold_up_the_calls(dynamodb: Any) -> None:
    # 30 rows at 10 a second: the first outcomes are published while the batch goes on calling
    # (and taking slots). The topic answers that first publish only once every row has been
    # called: a dispatcher that waited for it would take no slot meanwhile (and time out).
    all_called = threading.Event()
    waited: list[bool] = []
    first_publish: list[int] = []

    class Counting(Twilio):
        def call(self, request: Any, hold: Any = None, written: Any = None) -> TwilioResult:
            result = super().call(request, hold, written)
            if len(self.calls) == 30:
                all_called.set()
            return result

    class SlowTopic(Recorder):
        def publish(self, envelopes: list[dict[str, Any]]) -> None:
            if not waited:
                first_publish.append(len(envelopes))
                waited.append(all_called.wait(timeout=10))
            super().publish(envelopes)

    twilio, recorder, _ = run(
        dynamodb, 30, rate=10, latency=0.0, twilio_class=Counting, recorder=SlowTopic()
    )

    assert 0 < first_publish[0] < 30  # published while the batch was calling, not at its end
    assert waited == [True] and len(twilio.calls) == 30
    assert sorted(e["row"] for e in recorder.published) == list(range(1, 31))


def test_a_row_due_later_than_its_lead_goes_back_unless_the_batching_window_makes_it_longer(
    dynamodb: Any,
) -> None:
    # Due in 5 s: with the default lead (rows visible 2 to 3 s early) the batch does not hold
    # it, and it comes back 2 s before it is due; with a 5 s batching window rows are made
    # visible 6 s early, so a row 5 s early is on time, and held.
    twilio, recorder, _ = run(dynamodb, 1, rate=100, latency=0.0, due=T0 + 5.0)
    assert twilio.calls == []
    assert [(r.row, round(delay, 3)) for r, delay in recorder.later] == [(1, 3.0)]

    twilio, recorder, slots = run(
        dynamodb, 1, rate=100, latency=0.0, due=T0 + 5.0, visible_early=visible_early_seconds(5)
    )
    assert [row for _, row in twilio.calls] == [1] and recorder.later == []
    assert slots[0] >= T0 + 5.0


@pytest.mark.parametrize("early", [False, True])
def test_a_row_another_delivery_took_over_is_let_go_and_named_in_the_log(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch, early: bool
) -> None:
    # Rows 1 and 2 are sent. While row 3's call is out (the batch's last: nothing after it
    # depends on how the account slows after a 429), another delivery takes its claim over,
    # and Twilio refuses the call (429, not processed). This batch's retry of row 3 is refused
    # and the row left to the taker (neither put back nor published), named in the warning so
    # a row that then never settles can be traced.
    class Refusing(Twilio):
        def call(self, request: Any, hold: Any = None, written: Any = None) -> TwilioResult:
            if request.row != 3:
                return super().call(request, hold, written)
            if hold is not None:
                hold()
            self.calls.append((self.clock(), request.row))
            dynamodb.update_item(
                TableName="ledger",
                Key={"job_id": {"S": "job"}, "row": {"N": "3"}},
                UpdateExpression="SET claimed_at = :later",
                ExpressionAttributeValues={":later": {"N": repr(self.clock() + 1.0)}},
            )
            return TwilioResult(429, {"code": 20429}, {}, self.clock(), self.clock())

    if early:  # every outcome published as soon as it is ready, while the batch calls on
        import chalicelib.sending.dispatcher as dispatcher_module

        monkeypatch.setattr(dispatcher_module, "EARLY_PUBLISH_COUNT", 1)
    # Read from the sender's own logger: the app's logging set-up (JSON lines, as in Lambda)
    # stops the project's loggers propagating to the root, where caplog listens.
    warnings: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("chalicelib.sending.sender")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        twilio, recorder, _ = run(dynamodb, 3, rate=100, latency=0.0, twilio_class=Refusing)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)

    assert [row for _, row in twilio.calls] == [1, 2, 3]
    assert recorder.later == []  # row 3 is the taker's
    assert sorted(e["row"] for e in recorder.published) == [1, 2]
    assert warnings == ["1 rows were settled by another delivery meanwhile: job 3"]


def test_a_log_line_names_ten_rows_and_counts_the_rest() -> None:
    from chalicelib.sending.sender import _rows_named

    assert _rows_named(set()) == ""
    assert _rows_named({("b", 2), ("a", 10), ("a", 9)}) == "a 9, a 10, b 2"
    many = {("j", r) for r in range(1, 13)}
    assert _rows_named(many) == ", ".join(f"j {r}" for r in range(1, 11)) + " and 2 more"


@pytest.mark.parametrize("copy_attempt", [1, 2, 3])
def test_a_copy_of_another_attempt_that_takes_a_claim_over_settles_that_attempt(
    dynamodb: Any, copy_attempt: int
) -> None:
    # Row 1's attempt 2 was claimed 100 s ago and never recorded (in doubt). A copy of the row
    # carrying attempt 1 or 3 (an invocation ended while putting rows back leaves copies of two
    # attempts on the queue) takes the claim over; Twilio's list shows no message. The claim
    # is attempt 2's, so attempt 2 is what is settled: reopened, and attempt 3 put back. As the
    # copy's own attempt, the reopen was refused, the row let go "to the taker" (this very
    # delivery), its claim left calling with no message anywhere: lost.
    from chalicelib.core.evidence import Evidence

    ledger = CallLedger(dynamodb, "ledger", in_doubt_after=30.0, clock=lambda: T0 - 100.0)
    assert ledger.claim("job", 1, 2).verdict == "call"

    class Absent(Twilio):
        def look_up(self, request: Any, since: float, **_: Any) -> Any:
            return Evidence("absent", reason="not in the list")

    twilio, recorder, _ = run(
        dynamodb, 1, rate=100, latency=0.0, twilio_class=Absent, attempt=copy_attempt
    )

    assert twilio.calls == []  # settled by the look-up, not called blindly
    assert [(r.row, r.attempt) for r, _ in recorder.later] == [(1, 3)]  # the next attempt
    item = dynamodb.get_item(TableName="ledger", Key={"job_id": {"S": "job"}, "row": {"N": "1"}})
    assert item["Item"]["state"]["S"] == "retry" and item["Item"]["attempt"]["N"] == "2"
