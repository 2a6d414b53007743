"""`callqueue plan` with time: per-zone counts and send times of a known file, computed by hand,
across a daylight-saving change and a daily cap; bad timing options are one line and status 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from callqueue.cli import main

FROM = "+15005550006"
# (To, time_zone) per row, in file order.
ROWS = [
    ("+442071234567", ""),  # London
    ("+12125550100", ""),  # New York (212)
    ("+442079460000", ""),  # London
    ("+14155550100", ""),  # San Francisco (415)
    ("+61291234567", ""),  # Sydney landline (02)
    ("+12125550101", ""),  # New York
    ("+81312345678", ""),  # Tokyo (03)
    ("+61291234568", ""),  # Sydney
    ("+12125550102", ""),  # New York
    ("+81312345679", ""),  # Tokyo
    ("+12125550103", "Asia/Kolkata"),  # the column overrides the number's zone
    ("+15005550006", ""),  # a test number: every +1 zone, which share no 09:00-17:00
    ("+442071234568", "Mars/Olympus_Mons"),  # no such zone
]


@pytest.fixture(autouse=True)
def _no_account_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan reads the account's day and limit from the environment: none unless a test
    sets them."""
    for name in ("ACCOUNT_TIME_ZONE", "ACCOUNT_DAILY_LIMIT", "DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["To", "From", "Body", "time_zone"])
        writer.writerows([to, FROM, "hello", zone] for to, zone in rows)
    return path


def planned(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main(["plan", *argv, "--json", "--cps", "1", "--window", "60"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def by_zone(data: dict[str, Any]) -> list[tuple[str, int, str, str]]:
    return [(z["zone"], z["rows"], z["first"], z["last"]) for z in data["timeline"]["by_zone"]]


def test_plan_with_a_send_window_gives_each_zones_rows_and_times(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "campaign.csv", ROWS)
    data = planned(
        capsys, str(path), "--at", "2026-03-06T12:00:00Z", "--send-window", "09:00-17:00"
    )

    assert (data["rows"], data["valid"], data["rejected"]) == (13, 11, 2)
    assert [r["row"] for r in data["rejects"]] == [12, 13]
    assert "share no time of the send window 09:00-17:00" in data["rejects"][0]["reason"]
    assert "'Mars/Olympus_Mons' is not an IANA time zone" in data["rejects"][1]["reason"]
    # Friday 6 March 2026 at 12:00Z; one row a second, so a zone's last row is (rows - 1) s
    # after its first. No two zones open at once, so none waits for another.
    assert by_zone(data) == [
        # London is on GMT (UTC+0): 12:00 local, open now.
        ("Europe/London", 2, "2026-03-06T12:00:00Z", "2026-03-06T12:00:01Z"),
        # New York on EST (UTC-5): 09:00 local = 14:00Z.
        ("America/New_York", 3, "2026-03-06T14:00:00Z", "2026-03-06T14:00:02Z"),
        # San Francisco on PST (UTC-8): 09:00 local = 17:00Z.
        ("America/Los_Angeles", 1, "2026-03-06T17:00:00Z", "2026-03-06T17:00:00Z"),
        # Sydney on AEDT (UTC+11): 23:00 local now, closed; Saturday 09:00 = 22:00Z Friday.
        ("Australia/Sydney", 2, "2026-03-06T22:00:00Z", "2026-03-06T22:00:01Z"),
        # Tokyo on JST (UTC+9): 21:00 local now; Saturday 09:00 = 00:00Z Saturday.
        ("Asia/Tokyo", 2, "2026-03-07T00:00:00Z", "2026-03-07T00:00:01Z"),
        # Kolkata on IST (UTC+5:30): 17:30 local now; Saturday 09:00 = 03:30Z.
        ("Asia/Kolkata", 1, "2026-03-07T03:30:00Z", "2026-03-07T03:30:00Z"),
    ]
    timeline = data["timeline"]
    assert (timeline["start"], timeline["finish"]) == (
        "2026-03-06T12:00:00Z",
        "2026-03-07T03:30:00Z",
    )
    assert timeline["eta_seconds"] == 15.5 * 3600
    # One wait before each zone after London.
    assert (timeline["waits"], timeline["never"]) == (5, 0)
    assert {tuple(g["zones"]): g["rows"] for g in data["groups"]} == {
        ("Europe/London",): 2,
        ("America/New_York",): 3,
        ("America/Los_Angeles",): 1,
        ("Australia/Sydney",): 2,
        ("Asia/Tokyo",): 2,
        ("Asia/Kolkata",): 1,
    }
    # Each group fills chunks of its own: six chunks for eleven rows.
    assert data["chunks"] == 6


def test_the_next_days_window_moves_an_hour_in_utc_across_the_us_clock_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 100 New York rows, a one-minute window at one a second: 60 rows a day, then 40.
    path = write_csv(tmp_path / "ny.csv", [(f"+1212555{i:04d}", "") for i in range(100)])
    window = ("--send-window", "09:00-09:01")
    across = planned(capsys, str(path), "--at", "2026-03-07T12:00:00Z", *window)
    # Saturday 7 March 09:00 EST = 14:00Z; the clocks go forward at 02:00 on Sunday 8 March,
    # so Sunday's 09:00 EDT is 13:00Z: the last 40 rows from 13:00:00Z.
    assert by_zone(across) == [
        ("America/New_York", 100, "2026-03-07T14:00:00Z", "2026-03-08T13:00:39Z")
    ]
    # A week earlier no clock changes: the next day opens at 14:00Z again.
    before = planned(capsys, str(path), "--at", "2026-02-28T12:00:00Z", *window)
    assert by_zone(before) == [
        ("America/New_York", 100, "2026-02-28T14:00:00Z", "2026-03-01T14:00:39Z")
    ]


@pytest.mark.parametrize(
    ("zone", "last"),
    [
        # 10 rows on Friday from 12:00Z, 10 from Saturday 00:00Z, 5 from Sunday 00:00Z.
        ([], "2026-03-08T00:00:04Z"),
        # Days of Tokyo end at 15:00Z: 10 rows at 12:00Z, 10 from 15:00Z, 5 from 15:00Z Saturday.
        (["--account-time-zone", "Asia/Tokyo"], "2026-03-07T15:00:04Z"),
    ],
)
def test_max_per_day_spreads_25_rows_over_three_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], zone: list[str], last: str
) -> None:
    path = write_csv(tmp_path / "london.csv", [(f"+44207123{i:04d}", "") for i in range(25)])
    data = planned(capsys, str(path), "--at", "2026-03-06T12:00:00Z", "--max-per-day", "10", *zone)
    assert by_zone(data) == [("no window", 25, "2026-03-06T12:00:00Z", last)]
    assert data["timeline"]["waits"] == 2


def test_without_timing_options_the_plan_starts_at_at_in_one_group(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "campaign.csv", ROWS)
    data = planned(capsys, str(path), "--at", "2026-03-06T12:00:00-05:00")
    # No window: no zone is checked, every row is valid, all go at once at 17:00Z.
    assert data["valid"] == 13
    assert by_zone(data) == [("no window", 13, "2026-03-06T17:00:00Z", "2026-03-06T17:00:12Z")]
    assert data["timeline"]["eta_seconds"] == 12


def test_a_later_start_at_counts_from_at(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "campaign.csv", ROWS[:1])
    data = planned(capsys, str(path), "--at", "2026-03-06T12:00:00Z", "--start-at", "in 3h")
    assert data["timeline"]["start"] == "2026-03-06T15:00:00Z"
    # A start before --at means --at.
    early = planned(
        capsys, str(path), "--at", "2026-03-06T12:00:00Z", "--start-at", "2026-03-01T00:00:00Z"
    )
    assert early["timeline"]["start"] == "2026-03-06T12:00:00Z"


def test_the_text_plan_shows_when_each_zone_goes_in_utc_and_its_own_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "campaign.csv", ROWS)
    window = ("--send-window", "09:00-17:00")
    code = main(["plan", str(path), "--at", "2026-03-06T12:00:00Z", *window, "--cps", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "  when, starting 2026-03-06 12:00:00 UTC:" in out
    assert (
        "    America/New_York: 3 rows, 2026-03-06 14:00:00 UTC (Fri 09:00:00 EST) to "
        "2026-03-06 14:00:02 UTC (Fri 09:00:02 EST)"
    ) in out
    assert "    Australia/Sydney: 2 rows, 2026-03-06 22:00:00 UTC (Sat 09:00:00 AEDT)" in out
    assert "  last row due 2026-03-07 03:30:00 UTC, 15h30m after the start (5 wait(s)" in out


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--at", "tomorrow"], "'tomorrow'"),
        (["--at", "2026-03-06T12:00:00"], "has no offset"),
        (["--send-window", "9-17"], "'9-17'"),
        (["--send-window", "17:00-09:00"], "crosses midnight"),
        (["--send-days", "weekdays"], "'weekdays'"),
        (["--max-per-day", "-5"], "'-5'"),
        (["--start-at", "soon"], "'soon'"),
        (["--account-time-zone", "Europe/Atlantis"], "--account-time-zone: time zone"),
    ],
)
def test_a_bad_timing_option_is_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], named: str
) -> None:
    path = write_csv(tmp_path / "campaign.csv", ROWS[:1])
    code = main(["plan", str(path), *options])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("callqueue: ") and err.count("\n") == 1
    assert named in err


def test_a_bad_account_daily_limit_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCOUNT_DAILY_LIMIT", "lots")
    path = write_csv(tmp_path / "campaign.csv", ROWS[:1])
    assert main(["plan", str(path)]) == 2
    assert "ACCOUNT_DAILY_LIMIT must be a whole number, got 'lots'" in capsys.readouterr().err


def test_the_account_daily_limit_caps_the_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCOUNT_DAILY_LIMIT", "10")
    path = write_csv(tmp_path / "london.csv", [(f"+44207123{i:04d}", "") for i in range(25)])
    data = planned(capsys, str(path), "--at", "2026-03-06T12:00:00Z")
    assert data["timeline"]["finish"] == "2026-03-08T00:00:04Z"
