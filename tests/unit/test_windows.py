"""Send windows: parsing and canonical text, zones of a number, and when a window is open."""

from __future__ import annotations

import datetime
import itertools
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.config import ConfigError
from chalicelib.core.windows import (
    END_OF_DAY,
    HORIZON_SECONDS,
    BadSchedule,
    Openings,
    SendWindow,
    check_zone,
    zones_of_number,
)

DAY = 86_400
HOUR = 3_600
MON_FRI = frozenset(range(5))
EVERY_DAY = frozenset(range(7))
ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/St_Johns",
    "Pacific/Honolulu",
    "Europe/London",
    "Europe/Berlin",
    "Africa/Casablanca",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "UTC",
)
# Daylight-saving changes of 2026 (UTC): New York, Europe, Sydney, Lord Howe, Chatham.
CHANGES = (
    (2026, 3, 8, 7),
    (2026, 11, 1, 6),
    (2026, 3, 29, 1),
    (2026, 10, 25, 1),
    (2026, 4, 4, 16),
    (2026, 10, 3, 16),
    (2026, 4, 4, 15),
    (2026, 10, 3, 15),
    (2026, 4, 4, 14),
    (2026, 9, 26, 14),
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime.datetime(year, month, day, hour, minute, tzinfo=datetime.UTC).timestamp()


def window(start: str, end: str, days: frozenset[int] = EVERY_DAY) -> SendWindow:
    finish = END_OF_DAY if end == "24:00" else datetime.time.fromisoformat(end)
    return SendWindow(datetime.time.fromisoformat(start), finish, days)


def oracle(at: float, send: SendWindow, zones: tuple[str, ...]) -> bool:
    """Open when every zone's wall clock at `at` is on an allowed day and inside the hours."""
    for zone in zones:
        local = datetime.datetime.fromtimestamp(at, ZoneInfo(zone))
        seconds = local.hour * HOUR + local.minute * 60 + local.second + local.microsecond / 1e6
        if local.weekday() not in send.days or not (
            send.start_seconds <= seconds < send.end_seconds
        ):
            return False
    return True


# Parsing


@pytest.mark.parametrize(
    ("hours", "days", "expected"),
    [
        ("08:00-21:00", None, window("08:00", "21:00")),
        ("8:00 - 21:30", "MON-Fri", window("08:00", "21:30", MON_FRI)),
        ("  09:05-17:45 ", "mon,wed,fri", window("09:05", "17:45", frozenset({0, 2, 4}))),
        ("00:00-24:00", "sat,sun", window("00:00", "24:00", frozenset({5, 6}))),
        (None, "Saturday, SUNDAY", window("00:00", "24:00", frozenset({5, 6}))),
        ("08:00-21:00", "fri-mon", window("08:00", "21:00", frozenset({4, 5, 6, 0}))),
        ("08:00-21:00", "tue-mon", window("08:00", "21:00")),
        ("08:00-21:00", "wed-wed", window("08:00", "21:00", frozenset({2}))),
        ("08:00-21:00", "monday - friday, sun", window("08:00", "21:00", MON_FRI | {6})),
        ("23:59-24:00", "mon,mon-tue", window("23:59", "24:00", frozenset({0, 1}))),
    ],
)
def test_send_window_parse_reads_every_documented_form(
    hours: str | None, days: str | None, expected: SendWindow
) -> None:
    assert SendWindow.parse(hours, days) == expected


def test_send_window_parse_without_hours_or_days_is_no_window() -> None:
    assert SendWindow.parse(None, None) is None
    assert SendWindow.parse(None) is None


@pytest.mark.parametrize(
    ("hours", "days", "spec"),
    [
        ("8:00-21:00", "monday-friday", ("08:00-21:00", "mon-fri")),
        ("08:00-21:00", "fri,mon,wed", ("08:00-21:00", "mon,wed,fri")),
        ("08:00-21:00", "fri-mon", ("08:00-21:00", "mon,fri-sun")),
        ("08:00-21:00", "sun,sat", ("08:00-21:00", "sat,sun")),
        ("08:00-21:00", None, ("08:00-21:00", "mon-sun")),
        (None, "sat,sun", ("00:00-24:00", "sat,sun")),
        ("00:00-24:00", "mon-wed,fri-sun", ("00:00-24:00", "mon-wed,fri-sun")),
    ],
)
def test_send_window_spec_is_canonical(
    hours: str | None, days: str | None, spec: tuple[str, str]
) -> None:
    parsed = SendWindow.parse(hours, days)
    assert parsed is not None
    assert parsed.spec() == spec


minutes = st.integers(0, 1439)
day_sets = st.frozensets(st.integers(0, 6), min_size=1)


@given(start=minutes, length=st.integers(1, 1440), days=day_sets)
def test_send_window_spec_round_trips(start: int, length: int, days: frozenset[int]) -> None:
    end = min(start + length, 1440)
    finish = END_OF_DAY if end == 1440 else datetime.time(end // 60, end % 60)
    send = SendWindow(datetime.time(start // 60, start % 60), finish, days)
    hours, day_text = send.spec()
    assert SendWindow.parse(hours, day_text) == send
    assert SendWindow.parse(f" {hours.replace('-', ' - ')} ", day_text.upper()) == send


NAMES = (
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
)


@given(
    items=st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 6), st.booleans(), st.booleans()),
        min_size=1,
        max_size=5,
    )
)
def test_send_days_ranges_wrap_past_sunday(items: list[tuple[int, int, bool, bool]]) -> None:
    text, expected = [], set()
    for first, last, full, upper in items:
        name = NAMES[first][full] + ("" if first == last else "-" + NAMES[last][full])
        text.append(name.upper() if upper else name)
        day = first
        expected.add(day)
        while day != last:
            day = (day + 1) % 7
            expected.add(day)
    parsed = SendWindow.parse("08:00-09:00", " , ".join(text))
    assert parsed is not None
    assert parsed.days == expected


@pytest.mark.parametrize(
    ("hours", "days", "says"),
    [
        ("8-21", None, "'8-21': hours must be HH:MM-HH:MM between 00:00 and 24:00"),
        ("08:00", None, "'08:00': hours must be HH:MM-HH:MM"),
        ("", None, "send window '': hours must be"),
        ("  ", "mon", "send window '  ': hours must be"),
        ("25:00-21:00", None, "send window '25:00-21:00': hours must be HH:MM-HH:MM between"),
        ("08:60-09:00", None, "'08:60-09:00': hours must be"),
        ("08:00-24:30", None, "'08:00-24:30': hours must be"),
        ("24:00-24:00", None, "'24:00-24:00': hours must be"),
        ("008:00-09:00", None, "'008:00-09:00': hours must be"),
        ("08:00-09:00-10:00", None, "'08:00-09:00-10:00': hours must be"),
        ("08.00-21.00", None, "'08.00-21.00': hours must be"),
        ("\u0660\u0668:00-21:00", None, "hours must be"),
        ("21:00-08:00", None, "'21:00-08:00' crosses midnight"),
        ("22:00-06:00", "mon-fri", "'22:00-06:00' crosses midnight"),
        ("08:00-08:00", None, "'08:00-08:00' is empty"),
        ("08:00-21:00", "mon-funday", "send days 'mon-funday': 'funday' is not a day"),
        ("08:00-21:00", "mon,,tue", "send days 'mon,,tue': an empty item"),
        ("08:00-21:00", "mon,", "send days 'mon,': an empty item"),
        ("08:00-21:00", "", "send days '': give days"),
        (None, " ", "send days ' ': give days"),
        ("08:00-21:00", "mon-tue-wed", "'mon-tue-wed' is not a day or a range"),
        ("08:00-21:00", "mo", "'mo' is not a day"),
        ("08:00-21:00", "1-5", "'1' is not a day"),
        ("08:00-21:00", "mon-", "'' is not a day"),
    ],
)
def test_send_window_parse_refuses_malformed_text_naming_it(
    hours: str | None, days: str | None, says: str
) -> None:
    with pytest.raises(BadSchedule) as raised:
        SendWindow.parse(hours, days)
    message = str(raised.value)
    assert says in message
    assert "\n" not in message
    assert isinstance(raised.value, ConfigError)


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        (datetime.time(9), datetime.time(8), EVERY_DAY),
        (datetime.time(9), datetime.time(9), EVERY_DAY),
        (datetime.time(9, 0, 30), datetime.time(10), EVERY_DAY),
        (datetime.time(9), datetime.time(23, 59, 59), EVERY_DAY),
        (END_OF_DAY, END_OF_DAY, EVERY_DAY),
        (datetime.time(9, tzinfo=datetime.UTC), datetime.time(10), EVERY_DAY),
        (datetime.time(9), datetime.time(10), frozenset()),
        (datetime.time(9), datetime.time(10), frozenset({7})),
    ],
)
def test_send_window_refuses_impossible_values(
    start: datetime.time, end: datetime.time, days: frozenset[int]
) -> None:
    with pytest.raises(BadSchedule):
        SendWindow(start, end, days)


def test_send_window_keeps_days_frozen() -> None:
    send = SendWindow(datetime.time(8), datetime.time(9), {0, 1})  # type: ignore[arg-type]
    assert send.days == frozenset({0, 1})
    assert hash(send) == hash(window("08:00", "09:00", frozenset({0, 1})))


# Zones


def test_zones_of_number_reads_phonenumbers_time_zones() -> None:
    assert zones_of_number("+14155550100") == ("America/Los_Angeles",)
    assert zones_of_number("+81312345678") == ("Asia/Tokyo",)
    # phonenumbers says Etc/Unknown for a number outside the ranges it maps (here Ofcom's
    # drama range): the country's zones stand in.
    assert zones_of_number("+447700900123") == (
        "Europe/Guernsey",
        "Europe/Isle_of_Man",
        "Europe/Jersey",
        "Europe/London",
    )
    australia = zones_of_number("+61412345678")
    assert len(australia) > 1
    assert "Australia/Sydney" in australia
    assert list(australia) == sorted(set(australia))


@pytest.mark.parametrize(
    "garbage", ["", "garbage", "+", "+1", "+999123456", "4155550100", "x" * 300]
)
def test_zones_of_number_of_garbage_is_empty(garbage: str) -> None:
    assert zones_of_number(garbage) == ()


def test_check_zone_accepts_iana_names_stripped() -> None:
    assert check_zone(" Europe/London\t") == "Europe/London"
    assert check_zone("UTC") == "UTC"
    assert check_zone("America/Argentina/Buenos_Aires") == "America/Argentina/Buenos_Aires"


@pytest.mark.parametrize(
    "name",
    [
        "Mars/Base",
        "",
        " ",
        "america/new_york",
        "America",
        "America/",
        "Etc/Unknown",
        "localtime",
        "posixrules",
        "zone.tab",
        "../../etc/passwd",
        "/etc/localtime",
        "America/New_York\x00",
    ],
)
def test_check_zone_refuses_what_is_not_an_iana_zone(name: str) -> None:
    with pytest.raises(BadSchedule) as raised:
        check_zone(name)
    assert str(raised.value) == (
        f"time zone {name!r} is not an IANA time zone (e.g. America/New_York)"
    )


def test_check_zone_message_names_the_zone() -> None:
    with pytest.raises(BadSchedule, match=r"^time zone 'Mars/Base' is not an IANA time zone"):
        check_zone("Mars/Base")


def test_openings_need_a_zone_and_valid_ones() -> None:
    with pytest.raises(ValueError, match="at least one time zone"):
        Openings(window("08:00", "21:00"), ())
    with pytest.raises(BadSchedule, match="'Mars/Base'"):
        Openings(window("08:00", "21:00"), ("Europe/London", "Mars/Base"))


# Openings in one zone, at instants written by hand


@pytest.mark.parametrize(
    ("zone", "opens", "closes"),
    [
        # 08:00-21:00 local. New York: EST (-5) before 2026-03-08 02:00, EDT (-4) after.
        ("America/New_York", utc(2026, 3, 6, 13), utc(2026, 3, 7, 2)),
        ("America/New_York", utc(2026, 3, 8, 12), utc(2026, 3, 9, 1)),
        ("America/New_York", utc(2026, 3, 9, 12), utc(2026, 3, 10, 1)),
        ("America/New_York", utc(2026, 10, 31, 12), utc(2026, 11, 1, 1)),
        ("America/New_York", utc(2026, 11, 1, 13), utc(2026, 11, 2, 2)),
        # Los Angeles: PST (-8), PDT (-7) from 2026-03-08.
        ("America/Los_Angeles", utc(2026, 3, 6, 16), utc(2026, 3, 7, 5)),
        ("America/Los_Angeles", utc(2026, 3, 9, 15), utc(2026, 3, 10, 4)),
        # London: GMT, BST (+1) from 2026-03-29 01:00 UTC to 2026-10-25 01:00 UTC.
        ("Europe/London", utc(2026, 3, 28, 8), utc(2026, 3, 28, 21)),
        ("Europe/London", utc(2026, 3, 29, 7), utc(2026, 3, 29, 20)),
        ("Europe/London", utc(2026, 10, 24, 7), utc(2026, 10, 24, 20)),
        ("Europe/London", utc(2026, 10, 25, 8), utc(2026, 10, 25, 21)),
        # Sydney: AEDT (+11) until 2026-04-05 03:00, AEST (+10) until 2026-10-04 02:00.
        ("Australia/Sydney", utc(2026, 4, 3, 21), utc(2026, 4, 4, 10)),
        ("Australia/Sydney", utc(2026, 4, 4, 22), utc(2026, 4, 5, 11)),
        ("Australia/Sydney", utc(2026, 10, 2, 22), utc(2026, 10, 3, 11)),
        ("Australia/Sydney", utc(2026, 10, 3, 21), utc(2026, 10, 4, 10)),
        # Tokyo: +9 all year.
        ("Asia/Tokyo", utc(2026, 1, 4, 23), utc(2026, 1, 5, 12)),
        ("Asia/Tokyo", utc(2026, 7, 5, 23), utc(2026, 7, 6, 12)),
    ],
)
def test_openings_follow_each_zones_daylight_saving(zone: str, opens: float, closes: float) -> None:
    openings = Openings(window("08:00", "21:00"), (zone,))
    assert not openings.is_open(opens - 1)
    assert openings.is_open(opens)
    assert openings.next_open(opens - HOUR) == opens
    assert openings.next_open(opens - 1) == opens
    assert openings.next_open(opens + HOUR) == opens + HOUR
    assert openings.closes_at(opens) == closes
    assert openings.closes_at(closes - 1) == closes
    assert openings.is_open(closes - 1)
    assert not openings.is_open(closes)
    assert openings.intervals(opens - HOUR, closes + HOUR) == [(opens, closes)]


def test_openings_weekdays_skip_the_weekend_in_local_time() -> None:
    # Tokyo, mon-fri: Friday 2026-01-09 21:00 JST closes; Monday 08:00 JST is Sunday 23:00 UTC.
    openings = Openings(window("08:00", "21:00", MON_FRI), ("Asia/Tokyo",))
    assert openings.next_open(utc(2026, 1, 9, 12)) == utc(2026, 1, 11, 23)
    assert openings.intervals(utc(2026, 1, 9), utc(2026, 1, 12)) == [
        (utc(2026, 1, 9), utc(2026, 1, 9, 12)),
        (utc(2026, 1, 11, 23), utc(2026, 1, 12)),
    ]


def test_openings_on_the_day_clocks_go_back_open_in_both_passes_of_the_repeated_hour() -> None:
    # New York 2026-11-01: 01:00-02:00 happens twice (EDT 05:00-06:00 UTC, EST 06:00-07:00 UTC).
    openings = Openings(window("00:00", "01:30"), ("America/New_York",))
    assert openings.intervals(utc(2026, 11, 1), utc(2026, 11, 2)) == [
        (utc(2026, 11, 1, 4), utc(2026, 11, 1, 5, 30)),
        (utc(2026, 11, 1, 6), utc(2026, 11, 1, 6, 30)),
    ]


def test_openings_on_the_day_clocks_go_forward_skip_the_missing_hour() -> None:
    # New York 2026-03-08: 02:00 EST (07:00 UTC) becomes 03:00 EDT.
    inside = Openings(window("02:15", "02:45"), ("America/New_York",))
    assert inside.intervals(utc(2026, 3, 8), utc(2026, 3, 9)) == []
    assert inside.next_open(utc(2026, 3, 8)) == utc(2026, 3, 9, 6, 15)
    across = Openings(window("02:30", "08:00"), ("America/New_York",))
    assert across.intervals(utc(2026, 3, 8), utc(2026, 3, 9)) == [
        (utc(2026, 3, 8, 7), utc(2026, 3, 8, 12))
    ]


# Openings of several zones: the intersection


def test_new_york_and_los_angeles_share_11_to_21_new_york_time() -> None:
    for zones in (
        ("America/New_York", "America/Los_Angeles"),
        ("America/Los_Angeles", "America/New_York", "America/New_York"),
    ):
        openings = Openings(window("08:00", "21:00"), zones)
        # EDT/PDT: 08:00 Los Angeles = 15:00 UTC = 11:00 New York; 21:00 New York = 01:00 UTC.
        assert openings.intervals(utc(2026, 3, 9, 5), utc(2026, 3, 10, 5)) == [
            (utc(2026, 3, 9, 15), utc(2026, 3, 10, 1))
        ]
        # EST/PST, a week earlier: one hour later in UTC.
        assert openings.next_open(utc(2026, 3, 2, 5)) == utc(2026, 3, 2, 16)
        assert openings.closes_at(utc(2026, 3, 2, 16)) == utc(2026, 3, 3, 2)
        assert openings.zones == ("America/Los_Angeles", "America/New_York")


def test_toll_free_numbers_share_08_to_21_only_across_the_date_line() -> None:
    # +1 800 spans Guam (+10) to St John's (-3:30, -2:30 in summer) and Pago Pago (-11): 08:00 in
    # Guam is 22:00 UTC, when it is 11:00 to 18:30 of the day before everywhere else; St John's
    # reaches 21:00 first, at 00:30 UTC in winter and 23:30 UTC in summer.
    zones = zones_of_number("+18005550100")
    assert {"Pacific/Guam", "Pacific/Pago_Pago", "America/St_Johns"} <= set(zones)
    openings = Openings(window("08:00", "21:00"), zones)
    assert not openings.never_opens
    assert openings.intervals(utc(2026, 1, 5, 12), utc(2026, 1, 6, 12)) == [
        (utc(2026, 1, 5, 22), utc(2026, 1, 6, 0, 30))
    ]
    assert openings.intervals(utc(2026, 7, 6, 12), utc(2026, 7, 7, 12)) == [
        (utc(2026, 7, 6, 22), utc(2026, 7, 6, 23, 30))
    ]


def test_toll_free_numbers_never_share_office_hours() -> None:
    openings = Openings(window("09:00", "17:00"), zones_of_number("+18005550100"))
    assert openings.never_opens
    for start in (utc(2026, 1, 5), utc(2026, 7, 1, 13, 7), utc(2030, 3, 10)):
        assert openings.next_open(start) is None
        assert openings.intervals(start, start + HORIZON_SECONDS) == []


def test_australian_mobiles_share_a_window() -> None:
    # +61 4 spans Cocos (+6:30) to Lord Howe (+11 in January): 08:00 Cocos is 01:30 UTC, 21:00
    # Lord Howe is 10:00 UTC.
    zones = zones_of_number("+61412345678")
    assert {"Indian/Cocos", "Australia/Lord_Howe"} <= set(zones)
    openings = Openings(window("08:00", "21:00"), zones)
    assert not openings.never_opens
    assert openings.intervals(utc(2026, 1, 5), utc(2026, 1, 6)) == [
        (utc(2026, 1, 5, 1, 30), utc(2026, 1, 5, 10))
    ]


def test_a_days_only_window_is_the_weekend_everywhere_at_once() -> None:
    # Saturday 2026-01-10 starts in Los Angeles at 08:00 UTC; Sunday ends in Tokyo at 15:00 UTC.
    send = SendWindow.parse(None, "sat,sun")
    assert send is not None
    openings = Openings(send, ("Asia/Tokyo", "America/Los_Angeles"))
    assert openings.intervals(utc(2026, 1, 5), utc(2026, 1, 19)) == [
        (utc(2026, 1, 10, 8), utc(2026, 1, 11, 15)),
        (utc(2026, 1, 17, 8), utc(2026, 1, 18, 15)),
    ]
    assert openings.closes_at(utc(2026, 1, 10, 9)) == utc(2026, 1, 11, 15)
    assert openings.next_open(utc(2026, 1, 11, 15)) == utc(2026, 1, 17, 8)


def test_a_window_open_all_week_reports_the_horizon_as_its_close() -> None:
    send = SendWindow.parse("00:00-24:00", "mon-sun")
    assert send is not None
    openings = Openings(send, ("Europe/London", "UTC", "Asia/Kathmandu"))
    at = utc(2026, 3, 29, 0, 59)
    assert openings.next_open(at) == at
    assert openings.closes_at(at) == at + HORIZON_SECONDS
    assert openings.intervals(at, at + 3 * DAY) == [(at, at + 3 * DAY)]


def test_next_open_looks_exactly_the_horizon_ahead() -> None:
    # London 08:00-13:00 and New York 08:00-13:00 overlap only while New York is on EDT and
    # London on GMT: from Sunday 2026-03-08 (12:00-13:00 UTC) to 2026-03-28.
    openings = Openings(window("08:00", "13:00"), ("Europe/London", "America/New_York"))
    first = utc(2026, 3, 8, 12)
    assert openings.next_open(utc(2026, 1, 5)) is None
    assert openings.next_open(first - HORIZON_SECONDS) is None
    assert openings.next_open(first - HORIZON_SECONDS + 1) == first
    assert openings.closes_at(first) == utc(2026, 3, 8, 13)
    assert not openings.never_opens


def test_closes_at_refuses_a_closed_instant() -> None:
    openings = Openings(window("08:00", "21:00"), ("UTC",))
    with pytest.raises(ValueError, match="not open"):
        openings.closes_at(utc(2026, 1, 5, 7))


# Properties against an oracle that reads each zone's wall clock


zone_sets = st.lists(st.sampled_from(ZONES), min_size=1, max_size=4).map(tuple)
windows = st.builds(
    lambda start, length, days: SendWindow(
        datetime.time(start // 60, start % 60),
        END_OF_DAY if start + length >= 1440 else datetime.time(*divmod(start + length, 60)),
        days,
    ),
    minutes,
    st.integers(1, 1440),
    day_sets,
)
# Instants anywhere in 2025-2028, or within two days of a daylight-saving change.
instants = st.one_of(
    st.integers(int(utc(2025, 1, 1)), int(utc(2029, 1, 1))),
    st.builds(
        lambda change, shift: int(utc(*change)) + shift,
        st.sampled_from(CHANGES),
        st.integers(-2 * DAY, 2 * DAY),
    ),
)


def samples(lo: float, hi: float, count: int = 60) -> list[float]:
    return [lo + (hi - lo) * i / count for i in range(count)]


@settings(deadline=None)
@given(send=windows, zones=zone_sets, at=instants)
def test_is_open_and_next_open_agree_with_the_wall_clocks(
    send: SendWindow, zones: tuple[str, ...], at: int
) -> None:
    openings = Openings(send, zones)
    assert openings.is_open(at) == oracle(at, send, zones)
    found = openings.next_open(at)
    if found is None:
        assert not any(oracle(t, send, zones) for t in samples(at, at + HORIZON_SECONDS, 1344))
        return
    assert at <= found < at + HORIZON_SECONDS
    assert oracle(found, send, zones)
    assert (found == at) == oracle(at, send, zones)
    if found > at:
        assert not oracle(found - 1, send, zones)
        assert not any(oracle(t, send, zones) for t in samples(at, found))


@settings(deadline=None)
@given(send=windows, zones=zone_sets, at=instants)
def test_closes_at_ends_the_open_interval(
    send: SendWindow, zones: tuple[str, ...], at: int
) -> None:
    openings = Openings(send, zones)
    start = openings.next_open(at)
    if start is None:
        return
    closes = openings.closes_at(start)
    assert start < closes <= start + HORIZON_SECONDS
    assert oracle(closes - 1, send, zones)
    assert openings.is_open(closes - 1)
    assert all(oracle(t, send, zones) for t in samples(start, closes))
    if closes < start + HORIZON_SECONDS:
        assert not oracle(closes, send, zones)
        assert not openings.is_open(closes)


@settings(deadline=None)
@given(send=windows, zones=zone_sets, since=instants, span=st.integers(1, 10 * DAY))
def test_intervals_are_the_open_stretches_clipped_sorted_and_merged(
    send: SendWindow, zones: tuple[str, ...], since: int, span: int
) -> None:
    openings = Openings(send, zones)
    until = since + span
    found = openings.intervals(since, until)
    edges = [since, *(t for interval in found for t in interval), until]
    assert edges == sorted(edges)
    assert all(lo < hi for lo, hi in found)
    for (_, end), (start, _) in itertools.pairwise(found):
        assert end < start  # merged: touching stretches are one
        assert not oracle(end, send, zones)
    for lo, hi in found:
        assert all(oracle(t, send, zones) for t in samples(lo, hi, 10))
        assert lo == since or not oracle(lo - 1, send, zones)
        assert hi == until or not oracle(hi, send, zones)
    gaps = zip(edges[::2], edges[1::2], strict=True)
    assert not any(
        oracle(t, send, zones) for lo, hi in gaps if lo < hi for t in samples(lo, hi, 10)
    )
