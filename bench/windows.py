"""Benchmark: what send windows cost the intake and the release loop.

Validates and groups BENCH_ROWS rows (50,000 by default; US numbers over many area codes, plus
London, Sydney and Tokyo) as the splitter does, once without a window (the baseline, in the same
run) and once with 08:00-21:00; then works out every slice of the windowed job as the release
step would, from a Friday 12:00 UTC start at 10 CPS (several days of windows, waits included).
Writes bench/windows.json with the machine and date. Not part of `make test`."""

from __future__ import annotations

import io
import json
import os
import platform
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from callqueue.project import make_importable

make_importable()

from chalicelib.core.slices import Group, next_slice  # noqa: E402 - after the path is set
from chalicelib.core.windows import SendWindow  # noqa: E402
from chalicelib.intake.rows import Accepted, checked_rows  # noqa: E402
from chalicelib.intake.zoning import checked_zones, openings  # noqa: E402

ROWS = int(os.environ.get("BENCH_ROWS", "50000"))
OUT = Path(__file__).resolve().parent / "windows.json"
AREAS = ["212", "305", "312", "415", "503", "602", "702", "808", "907", "416", "604", "617"]
ABROAD = ["+442079460{:03d}", "+6129123{:04d}", "+8131234{:04d}"]


def numbers(count: int) -> list[str]:
    out = []
    for i in range(count):
        if i % 10 < 9:
            out.append(f"+1{AREAS[i % len(AREAS)]}2{(i // len(AREAS)) % 1_000_000:06d}")
        else:
            out.append(ABROAD[i % 3].format(i % 1000))
    return out


def csv_file(count: int) -> bytes:
    lines = ["To,From,Body"]
    lines += [f"{n},+15005550006,hello {i}" for i, n in enumerate(numbers(count))]
    return ("\n".join(lines) + "\n").encode()


def intake(body: bytes, window: SendWindow | None) -> dict[str, object]:
    started = time.perf_counter()
    groups: Counter[tuple[str, ...]] = Counter()
    valid = 0
    for item in checked_rows(io.BytesIO(body), "csv", None):
        if isinstance(item, Accepted):
            zones = checked_zones(item.request, item.time_zone, window) if window else ()
            groups[zones] += 1
            valid += 1
    seconds = time.perf_counter() - started
    return {
        "rows": ROWS,
        "valid": valid,
        "groups": len(groups),
        "seconds": round(seconds, 3),
        "microseconds_per_row": round(seconds / ROWS * 1e6, 1),
        "_groups": groups,
    }


def release_all(groups: Counter[tuple[str, ...]], window: SendWindow) -> dict[str, object]:
    cps, window_seconds = 10, 900
    size = cps * window_seconds
    ordered, chunk = [], 0
    for zones, rows in groups.items():
        count = -(-rows // size)
        ordered.append(Group(zones, tuple(range(chunk, chunk + count)), rows))
        chunk += count
    windows = [openings(window, g.zones) if g.zones else None for g in ordered]
    start = datetime(2026, 3, 6, 12, tzinfo=UTC).timestamp()
    at: float | None = start
    slices = waits = released = 0
    started = time.perf_counter()
    current = ordered
    last = start
    while at is not None:
        piece = next_slice(
            at,
            current,
            windows,
            cps=cps,
            window_seconds=window_seconds,
            chunk_size=size,
            turn=slices,
        )
        slices += 1
        waits += 0 if piece.runs else 1
        released += piece.rows
        current = list(piece.groups)
        if piece.runs:
            last = piece.runs[-1].at + (piece.runs[-1].count - 1) / cps
        at = piece.next_at if piece.waiting != "never" else None
        if all(g.remaining == 0 for g in current):
            break
    return {
        "cps": cps,
        "window_seconds": window_seconds,
        "released": released,
        "slices": slices,
        "waits": waits,
        "seconds": round(time.perf_counter() - started, 3),
        "days_from_start_to_last_row": round((last - start) / 86_400, 2),
    }


def main() -> int:
    body = csv_file(ROWS)
    window = SendWindow.parse("08:00-21:00", None)
    assert window is not None
    baseline = intake(body, None)
    windowed = intake(body, window)
    loop = release_all(windowed.pop("_groups"), window)  # type: ignore[arg-type]
    baseline.pop("_groups")
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "intake_without_window": baseline,
        "intake_with_window_08_21": windowed,
        "release_loop_with_window": loop,
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
