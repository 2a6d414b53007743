"""Suppression lists as CSV, both ways: a file of numbers to import, checked whole before anything
is written, and the list exported as `number,reason,source,added_at`.

An import file has a header naming its number column (`number`, `phone` or `To`, any case) and
optionally a `reason` column, or no header and one number a line. Numbers are normalised as the
rows' are (chalicelib.intake.validation.normalise_number, national ones read in DEFAULT_REGION).
Every bad line is reported with its line number (as an editor counts, from 1) and nothing is
imported while any line is bad.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import UTC, datetime

from chalicelib.config import ConfigError
from chalicelib.intake.validation import InvalidRow, normalise_number
from chalicelib.sending.suppression import Suppression

EXPORT_HEADER = ["number", "reason", "source", "added_at"]
NUMBER_COLUMNS = ("number", "phone", "to")
DEFAULT_REASON = "imported"
# The bad lines a message shows; the rest are counted.
SHOWN_BAD_LINES = 20
# A cell starting with one of these is a formula in Excel and Sheets (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class BadLines(ConfigError):
    """An import file with bad lines, each (line number, why) in `lines`; nothing was imported."""

    def __init__(self, lines: list[tuple[int, str]]) -> None:
        self.lines = lines
        super().__init__("\n".join(bad_line_messages(lines)))


def bad_line_messages(lines: list[tuple[int, str]]) -> list[str]:
    """One message a bad line, the first SHOWN_BAD_LINES of them, then how many more."""
    shown = [f"line {n}: {why}" for n, why in lines[:SHOWN_BAD_LINES]]
    if len(lines) > SHOWN_BAD_LINES:
        shown.append(f"... and {len(lines) - SHOWN_BAD_LINES} more bad line(s)")
    return [*shown, "nothing imported"]


def read_import(
    text: str, default_region: str | None, *, reason: str = DEFAULT_REASON
) -> dict[str, str]:
    """The numbers of an import file (number: reason, in the file's order, the first line of a
    number kept), or BadLines naming every bad line. `reason` is for lines that give none."""
    entries: dict[str, str] = {}
    bad: list[tuple[int, str]] = []
    columns: tuple[int, int | None] | None = None
    headerless = False
    for line, cells in _records(text.removeprefix("\ufeff")):
        if columns is None:
            columns = _header(cells)
            if columns is not None:
                continue
            columns, headerless = (0, None), True
        try:
            number, why = _entry(cells, columns, headerless, default_region)
        except InvalidRow as error:
            bad.append((line, str(error)))
            continue
        entries.setdefault(number, why or reason)
    if bad:
        raise BadLines(bad)
    return entries


def _records(text: str) -> Iterable[tuple[int, list[str]]]:
    """Each record that is not blank, with the line it starts on (a quoted cell can span lines)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    start = 1
    for cells in reader:
        if any(c.strip() for c in cells):
            yield start, cells
        start = reader.line_num + 1


def _header(cells: list[str]) -> tuple[int, int | None] | None:
    """(number column, reason column or None) if these cells are a header, else None."""
    names = [c.strip().casefold() for c in cells]
    number = next((i for i, n in enumerate(names) if n in NUMBER_COLUMNS), None)
    if number is None:
        return None
    return number, names.index("reason") if "reason" in names else None


def _entry(
    cells: list[str], columns: tuple[int, int | None], headerless: bool, region: str | None
) -> tuple[str, str]:
    number_at, reason_at = columns
    if headerless and any(c.strip() for c in cells[1:]):
        raise InvalidRow(
            f"{len(cells)} cells: give one number a line, or a header row naming the "
            "number column (number, phone or To) and a reason column"
        )
    if number_at >= len(cells) or not cells[number_at].strip():
        raise InvalidRow("no number")
    typed = cells[number_at].strip()
    # An export neutralises a leading + with an apostrophe, which no number has of its own.
    if typed.startswith("'") and typed[1:2] in _FORMULA_STARTS:
        typed = typed[1:]
    number = normalise_number(typed, region)
    why = cells[reason_at].strip() if reason_at is not None and reason_at < len(cells) else ""
    return number, why


def export_csv(entries: Iterable[Suppression]) -> str:
    """The list as CSV, sorted by number; formulas neutralised as the reports' CSVs are."""
    out = io.StringIO()
    # The default \r\n line ends (RFC 4180) also make csv quote a cell with a lone \r in it.
    writer = csv.writer(out)
    writer.writerow(EXPORT_HEADER)
    for entry in sorted(entries, key=lambda e: e.number):
        when = "" if entry.added_at is None else iso_utc(entry.added_at)
        cells = [entry.number, entry.reason, entry.source or "", when]
        writer.writerow([_inert(c) for c in cells])
    return out.getvalue()


def iso_utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _inert(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_STARTS) else value
