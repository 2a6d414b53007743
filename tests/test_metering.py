"""The metering arithmetic: slot grid, adaptive rate, sender limits, message cost."""

from __future__ import annotations

import io
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.config import DEFAULT_RATE_HEADROOM
from chalicelib.metering import Aimd, Grid, SenderLimits, gcra_starts, sender_kind
from chalicelib.plan import plan
from chalicelib.planning import Schedule
from chalicelib.segments import message_cost


@pytest.mark.parametrize(
    ("rate", "cap", "width"),
    [(200, 20, 0.1), (50, 5, 0.1), (45, 5, 5 / 45), (10, 1, 0.1), (3, 1, 1 / 3), (1, 1, 1.0)],
)
def test_grid_buckets_hold_a_tenth_of_a_second(rate: float, cap: int, width: float) -> None:
    grid = Grid(rate)
    assert grid.cap == cap
    assert grid.width == pytest.approx(width)


def test_grid_slots_of_a_full_bucket_are_one_over_rate_apart() -> None:
    grid = Grid(200)
    times = [grid.slot_time(7, c) for c in range(grid.cap)]
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(times)}
    assert gaps == {0.005}
    assert times[0] == pytest.approx(0.7)
    assert grid.slot_time(8, 0) - times[-1] == pytest.approx(0.005)


def test_grid_at_a_lower_rate_uses_only_the_first_slots_of_a_bucket() -> None:
    grid = Grid(200)
    assert grid.usable(100) == 10
    assert grid.first_counter(0, 0.051, 10) == 10  # slots 0..9 (0 to 45 ms) are all past


def test_grid_usable_never_exceeds_cap_nor_falls_below_one() -> None:
    grid = Grid(50)
    assert grid.usable(500) == grid.cap
    assert grid.usable(0.01) == 1


def test_grid_first_counter_skips_slots_already_past() -> None:
    grid = Grid(200)  # 20 slots of 5 ms in each 100 ms bucket
    assert grid.first_counter(10, 0.99, 20) == 0  # the bucket has not begun
    assert grid.first_counter(10, 1.0, 20) == 0
    assert grid.first_counter(10, 1.012, 20) == 3  # slots at 1.000, 1.005, 1.010 are past
    assert grid.first_counter(10, 1.0999, 20) == 20  # none left
    assert grid.first_counter(10, 1.012, 10) == 3  # at half rate, the first ten slots


@given(
    rate=st.integers(min_value=1, max_value=1000),
    usable_share=st.floats(min_value=0.01, max_value=1.0),
    offset=st.floats(min_value=0.0, max_value=1.0),
)
def test_grid_first_counter_slot_is_never_before_not_before(
    rate: int, usable_share: float, offset: float
) -> None:
    grid = Grid(rate)
    usable = grid.usable(rate * usable_share)
    not_before = grid.start(5) + offset * grid.width
    counter = grid.first_counter(5, not_before, usable)
    if counter < usable:
        assert grid.slot_time(5, counter) >= not_before - 1e-9
    if counter > 0:
        assert grid.slot_time(5, counter - 1) < not_before


@given(rate=st.integers(min_value=1, max_value=2000), buckets=st.integers(1, 30))
def test_grid_any_window_of_a_second_holds_at_most_rate_slots(rate: int, buckets: int) -> None:
    grid = Grid(rate)
    times = sorted(grid.slot_time(b, c) for b in range(buckets) for c in range(grid.cap))
    j = 0
    for i, t in enumerate(times):
        while j < len(times) and times[j] < t + 1.0 - 1e-9:
            j += 1
        assert j - i <= rate


def max_in_window(times: list[float], width: float) -> int:
    ordered, best, j = sorted(times), 0, 0
    for i, t in enumerate(ordered):
        while j < len(ordered) and ordered[j] < t + width:
            j += 1
        best = max(best, j - i)
    return best


@given(
    cps=st.integers(1, 500),
    lateness=st.lists(st.floats(0.0, 0.02), min_size=1, max_size=50),
)
def test_the_headroom_keeps_arrivals_up_to_20ms_late_within_the_account_cps(
    cps: int, lateness: list[float]
) -> None:
    # Slots at 98% of ACCOUNT_CPS (chalicelib.config.DEFAULT_RATE_HEADROOM): calls that reach
    # Twilio up to 20 ms after their slots never put more than ACCOUNT_CPS in a sliding second.
    # (At the full rate, one call a moment late can make it ACCOUNT_CPS + 1.)
    grid = Grid(cps * (1 - float(DEFAULT_RATE_HEADROOM)))
    slots = [grid.slot_time(b, c) for b in range(40) for c in range(grid.cap)]
    arrivals = [s + lateness[i % len(lateness)] for i, s in enumerate(slots)]
    assert max_in_window(arrivals, 1.0) <= cps
    if cps == 50:  # and, at 50 CPS, no more than 6 in 100 ms
        assert max_in_window(arrivals, 0.1) <= 6


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
    rows = [(f"+1415{i:07d}", "+18885550000", "hi") for i in range(110_000)]  # toll-free: 3/s
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
