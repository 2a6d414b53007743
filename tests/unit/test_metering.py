"""The metering arithmetic: adaptive rate, sender limits, message cost, the rate headroom."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.config import DEFAULT_RATE_HEADROOM, DEFAULT_SLOT_TOLERANCE_SECONDS
from chalicelib.core.metering import Aimd, SenderLimits, gcra_starts, sender_kind
from chalicelib.core.schedule import Schedule
from chalicelib.core.segments import message_cost
from chalicelib.core.spacing import (
    WRITE_JITTER_SECONDS,
    account_rate,
    allowed_lateness,
    quiet_until,
    short_limit,
    spaced_rate,
)
from chalicelib.intake.plan import plan


def max_in_window(times: list[float], width: float) -> int:
    ordered, best, j = sorted(times), 0, 0
    for i, t in enumerate(ordered):
        while j < len(ordered) and ordered[j] < t + width:
            j += 1
        best = max(best, j - i)
    return best


@given(
    cps=st.integers(1, 500),
    lateness=st.lists(st.floats(0.0, 0.01), min_size=1, max_size=50),
)
def test_the_headroom_keeps_arrivals_up_to_10ms_late_within_the_account_cps(
    cps: int, lateness: list[float]
) -> None:
    # Slots at 99% of ACCOUNT_CPS (chalicelib.config.DEFAULT_RATE_HEADROOM): calls that reach
    # Twilio up to 10 ms after their slots (5 ms SLOT_TOLERANCE_SECONDS before the request is
    # sent, and 5 ms on its way) never put more than ACCOUNT_CPS in a sliding second.
    # (At the full rate, one call a moment late can make it ACCOUNT_CPS + 1.)
    rate = cps * (1 - float(DEFAULT_RATE_HEADROOM))
    slots = [i / rate for i in range(4 * cps + 1)]  # the account's schedule: 1/rate apart
    arrivals = [s + lateness[i % len(lateness)] for i, s in enumerate(slots)]
    assert max_in_window(arrivals, 1.0) <= cps


@pytest.mark.parametrize(("cps", "late"), [(50, 0.01), (100, 0.01), (200, 0.006)])
@given(fraction=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=50))
def test_arrivals_this_late_keep_the_100ms_limit_at_the_benchmarks_rates(
    cps: int, late: float, fraction: list[float]
) -> None:
    # The 100-ms limit (ACCOUNT_CPS/10 + 1) leaves room for one call a slot late: at 50 and 100
    # CPS the 10 ms the headroom allows; at 200 CPS 6 ms (the 5 ms tolerance and 1 ms on the way;
    # 22 calls in 100 ms need a call later than 21 slots' time less 100 ms: 6.06 ms).
    rate = cps * (1 - float(DEFAULT_RATE_HEADROOM))
    slots = [i / rate for i in range(2 * cps + 1)]
    arrivals = [s + late * fraction[i % len(fraction)] for i, s in enumerate(slots)]
    assert max_in_window(arrivals, 0.1) <= cps // 10 + 1


@given(
    cps=st.integers(10, 100).map(lambda n: n * 10),
    # Less than a whole slot: a call exactly one slot late lands on the next slot's time, which
    # the float sums of a second's slots can put inside the window.
    lateness=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=50),
)
def test_calls_at_most_one_slot_late_stay_within_the_second_and_the_100ms_limits(
    cps: int, lateness: list[float]
) -> None:
    # The sender's tolerance is never more than one slot's spacing (chalicelib.sending.pacing):
    # calls that leave anywhere up to one slot after their own put no more than ACCOUNT_CPS in a
    # sliding second, nor ACCOUNT_CPS/10 + 1 in a sliding 100 ms, at any rate from 100 CPS that is a
    # multiple of 10. (Below 100 CPS a slot is longer than the 10 ms the 1% headroom covers; there
    # the 5 ms tolerance, not the slot, bounds a call's lateness.)
    rate = cps * (1 - float(DEFAULT_RATE_HEADROOM))
    slots = [i / rate for i in range(2 * cps + 1)]
    sent = [s + lateness[i % len(lateness)] / rate for i, s in enumerate(slots)]
    assert max_in_window(sent, 1.0) <= cps
    assert max_in_window(sent, 0.1) <= cps // 10 + 1


def test_aimd_cuts_multiplicatively_and_grows_back_additively() -> None:
    aimd = Aimd(100.0)
    assert aimd.effective(0.0, 100.0, 0.05) == 100.0
    cut = aimd.cut(10.0, 100.0, 0.05, 0.7, floor=1.0)
    assert cut.effective(10.0, 100.0, 0.05) == pytest.approx(70.0)
    assert cut.effective(12.0, 100.0, 0.05) == pytest.approx(80.0)  # +5/s
    assert cut.effective(30.0, 100.0, 0.05) == 100.0  # never above the ceiling
    again = cut.cut(12.0, 100.0, 0.05, 0.7, floor=1.0)
    assert again.effective(12.0, 100.0, 0.05) == pytest.approx(56.0)
    assert Aimd(1.0, 0.0).cut(0.0, 100.0, 0.0, 0.5, floor=1.0).rate == 1.0


def test_sender_limits_off_by_default() -> None:
    assert SenderLimits.parse("").mps("+15005550006") is None
    assert SenderLimits.parse("off").mps("+15005550006") is None


def test_sender_limits_auto_by_kind_of_number() -> None:
    limits = SenderLimits.parse("auto")
    assert limits.mps("+15005550006") == 1.0
    assert limits.mps("+18005550006") == 3.0
    assert limits.mps("12345") == 100.0
    assert limits.mps("MG" + "0" * 32) is None  # a messaging service spreads over its pool
    assert limits.mps(None) is None


def test_sender_limits_overrides() -> None:
    limits = SenderLimits.parse("auto, +15005550006=10")
    assert limits.mps("+15005550006") == 10.0
    assert limits.mps("+15005550007") == 1.0


@pytest.mark.parametrize("spec", ["+1500=", "=3", "+1500=x", "+1500=0", "+1500"])
def test_sender_limits_reject_malformed(spec: str) -> None:
    with pytest.raises(ValueError, match="SENDER=MPS"):
        SenderLimits.parse(spec)


def test_sender_kind() -> None:
    assert sender_kind("+447700900123") == "long_code"
    assert sender_kind("+18885550000") == "toll_free"
    assert sender_kind("whatsapp:+15005550006") is None


def test_gcra_starts_space_messages_by_their_segments() -> None:
    assert gcra_starts(10.0, 5.0, [1, 3, 1], 1.0) == [10.0, 11.0, 14.0]
    assert gcra_starts(10.0, 12.0, [2, 2], 4.0) == [12.0, 12.5]


def test_message_cost_is_segments() -> None:
    assert message_cost({"Body": "hi"}) == 1
    assert message_cost({"Body": "x" * 161}) == 2
    assert message_cost({"Body": "é" * 1 + "😀" * 40}) == 2  # UCS-2
    assert message_cost({"Body": "x" * 400, "MediaUrl": "https://e.x/a.png"}) == 1
    assert message_cost({"ContentSid": "HX" + "0" * 32}) == 1


def _csv(rows: list[tuple[str, str, str]]) -> io.BytesIO:
    lines = ["To,From,Body"] + [",".join(r) for r in rows]
    return io.BytesIO("\n".join(lines).encode())


def test_plan_reports_eta_under_sender_limits_and_warns_of_slow_senders() -> None:
    rows = [(f"+1415555{i:04d}", "+15005550006", "x" * 200) for i in range(100)]  # 2 segments
    result = plan(_csv(rows), "csv", Schedule(50, 60))
    assert result.sender_segments == {"+15005550006": 200}
    assert result.eta_with_sender_limits == pytest.approx(200.0)  # a long code: 1 a second
    assert any("longer than the job's" in w for w in result.warnings())


def test_plan_warns_when_a_sender_would_overflow_twilios_ten_hour_queue() -> None:
    # 110,000 valid numbers from +1 415 555 0000 on, from a toll-free sender: 3 a second.
    rows = [(f"+1415{5_550_000 + i:07d}", "+18885550000", "hi") for i in range(110_000)]
    result = plan(_csv(rows), "csv", Schedule(100, 900))
    assert result.eta_with_sender_limits == pytest.approx(110_000 / 3)
    [warning] = result.warnings()
    assert "10 hours" in warning
    assert "+18885550000" in warning


def test_plan_with_explicit_sender_limits() -> None:
    rows = [(f"+1415555{i:04d}", "+15005550006", "hi") for i in range(100)]
    result = plan(_csv(rows), "csv", Schedule(50, 60), SenderLimits.parse("+15005550006=100"))
    assert result.eta_with_sender_limits == result.eta_seconds
    assert result.warnings() == []


# -- slots spaced for the calls' lateness (chalicelib.core.spacing) -------------------------------


@given(
    cps=st.integers(1, 2000),
    jitter=st.floats(0.0, 0.05),
    # Each call's lateness as a share of the budget, the extremes (0 and all of it) favoured:
    # the first calls all of it, the next none, is how a window gets its most.
    share=st.lists(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)), min_size=1),
    offset=st.floats(0.0, 1.0),
)
@settings(deadline=None)  # up to 4,001 slots a case
def test_spaced_slots_keep_both_limits_for_any_lateness_within_the_budget(
    cps: int, jitter: float, share: list[float], offset: float
) -> None:
    rate = spaced_rate(cps, jitter)
    # Two seconds of slots (at most 4,001), from anywhere on the clock.
    count = min(int(2 * rate) + 1, 4001)
    slots = [offset + i / rate for i in range(count)]
    arrivals = [s + jitter * share[i % len(share)] for i, s in enumerate(slots)]
    assert max_in_window(arrivals, 1.0) <= cps
    assert max_in_window(arrivals, 0.1) <= short_limit(cps)


@given(cps=st.integers(1, 2000), jitter=st.floats(0.0, 0.05))
def test_the_spacing_is_tight_a_little_faster_breaks_a_limit(cps: int, jitter: float) -> None:
    # 1% faster than spaced_rate, and the limit's worth of slots plus one each as late as the
    # budget allows up to the last one's time (the first a whole budget, the last on time): the
    # window from the first's arrival has one call too many. The bound is not loose.
    rate = spaced_rate(cps, jitter) * 1.01
    over = []
    for width, limit in ((1.0, cps), (0.1, short_limit(cps))):
        slots = [i / rate for i in range(limit + 1)]
        arrivals = [max(s, min(jitter, slots[-1])) for s in slots]
        over.append(max_in_window(arrivals, width) > limit)
    assert any(over)


@given(cps=st.integers(1, 2000), a=st.floats(0.0, 0.05), b=st.floats(0.0, 0.05))
def test_more_jitter_never_makes_the_slots_closer(cps: int, a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert spaced_rate(cps, high) <= spaced_rate(cps, low) <= cps


@given(
    cps=st.integers(1, 2000),
    headroom=st.floats(0.0, 0.49),
    tolerance=st.floats(0.0, 0.05),
)
def test_the_account_rate_keeps_the_headroom_and_the_budget(
    cps: int, headroom: float, tolerance: float
) -> None:
    rate = account_rate(cps, headroom, tolerance)
    assert rate <= cps * (1 - headroom)
    # Spaced for the lateness the sender allows at that very rate (a slot, when shorter than the
    # tolerance), so arrivals within it keep both limits.
    assert rate <= spaced_rate(cps, allowed_lateness(rate, tolerance) + WRITE_JITTER_SECONDS)


def test_the_account_rate_at_the_benchmarks_rates() -> None:
    # As deployed (1% headroom, 5 ms tolerance, 5 ms write jitter): at 50 CPS the headroom
    # decides; from 200 CPS the 100-ms limit does, for 10 ms of lateness at 200 CPS.
    headroom, tolerance = float(DEFAULT_RATE_HEADROOM), float(DEFAULT_SLOT_TOLERANCE_SECONDS)
    assert account_rate(50, headroom, tolerance) == pytest.approx(49.5)
    assert account_rate(200, headroom, tolerance) == pytest.approx(21 / 0.11)
    # From 300 CPS a slot is shorter than the tolerance, and the sender allows only a slot.
    for cps in (300, 400, 2000):
        first = (cps // 10 + 1) / 0.11
        slot = 1 / first
        assert account_rate(cps, headroom, tolerance) == pytest.approx(
            (cps // 10 + 1) / (0.105 + slot)
        )


@given(slot=st.floats(0.0, 1e6), late=st.floats(0.0, 1.0), budget=st.floats(0.0, 0.1))
def test_a_write_later_than_the_budget_quiets_the_sender_past_the_write(
    slot: float, late: float, budget: float
) -> None:
    written = slot + late
    until = quiet_until(slot, written, budget)
    if written - slot <= budget:
        assert until is None
    else:
        # Never earlier than a short window past the write: the late call's arrival (by the
        # write's end) shares no 100 ms with a call that goes after it.
        assert until is not None and until >= written + 0.1
