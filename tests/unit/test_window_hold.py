"""Rows a pause moved past their send window's close wait for its next opening
(chalicelib.sending.window_hold), keeping their spacing; other rows are left alone."""

from __future__ import annotations

from datetime import datetime

from chalicelib.core.jobs import Job
from chalicelib.core.records import QueuedRow
from chalicelib.core.slices import Group, groups_json
from chalicelib.sending.window_hold import held_for_window


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# New York 08:00-21:00; on 2026-12-07 (EST) it closes at 02:00 UTC on the 8th and opens again
# at 13:00 UTC.
CLOSE = at("2026-12-08T02:00:00+00:00")
OPENS = at("2026-12-08T13:00:00+00:00")


def job(**fields: object) -> Job:
    groups = [Group((), 1, 5), Group(("America/New_York",), 1, 5)]
    base = {
        "send_window": "08:00-21:00",
        "send_days": "mon-sun",
        "groups": groups_json(groups),
    }
    return Job("j", "b", "k", "e", "running", 10, 60, 0.0, **{**base, **fields})  # type: ignore[arg-type]


def row(until: float, group: int = 1) -> QueuedRow:
    return QueuedRow(
        "j", 1, "messages", {"To": "+12125550100"}, CLOSE - 5, until=until, group=group
    )


def test_a_row_moved_past_its_close_waits_for_the_next_opening_keeping_its_spacing() -> None:
    moved = held_for_window(row(CLOSE), job(), CLOSE + 30)
    assert moved is not None
    assert moved.due_at == OPENS + 30
    # Its window is now the next day's: it closes at 02:00 UTC on the 9th.
    assert moved.until == at("2026-12-09T02:00:00+00:00")


def test_a_row_still_inside_its_window_goes() -> None:
    assert held_for_window(row(CLOSE), job(), CLOSE - 0.001) is None


def test_rows_without_a_window_or_of_a_group_without_zones_go() -> None:
    assert held_for_window(row(0.0), job(), CLOSE + 30) is None
    assert held_for_window(row(CLOSE, group=0), job(), CLOSE + 30) is None
    assert held_for_window(row(CLOSE, group=7), job(), CLOSE + 30) is None
    assert held_for_window(row(CLOSE), job(send_window=None, send_days=None), CLOSE + 30) is None
    assert held_for_window(row(CLOSE), None, CLOSE + 30) is None


def test_a_row_moved_further_than_the_next_window_lasts_goes_at_its_opening() -> None:
    moved = held_for_window(row(CLOSE), job(send_window="08:00-08:01"), CLOSE + 3600)
    assert moved is not None and moved.due_at == at("2026-12-08T13:00:00+00:00")


def test_the_hold_survives_the_queue() -> None:
    held = row(CLOSE)
    assert QueuedRow.from_json(held.to_json()) == held
    plain = row(0.0, group=0)
    assert "until" not in plain.to_json() and QueuedRow.from_json(plain.to_json()) == plain
