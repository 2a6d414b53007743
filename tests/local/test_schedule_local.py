"""End to end: `callqueue run --start-at` a few seconds ahead makes no Twilio request before its
start, waits for it however long no row settles, then sends every row."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.local.test_runtime import read_log, run_callqueue

pytestmark = pytest.mark.e2e

# Ahead of the command's start: more than the local stack takes to start and split the file,
# and more than --timeout, so a run that took the wait for a stall would give up.
AHEAD_SECONDS = 25
ROWS = 4


def test_run_with_a_later_start_makes_no_request_before_it(tmp_path: Path) -> None:
    source = tmp_path / "later.csv"
    lines = ["To,From,Body"] + [f"+1415555{i:04d},+15005550006,hello {i}" for i in range(ROWS)]
    source.write_text("\n".join(lines) + "\n")
    report, log = tmp_path / "report.json", tmp_path / "requests.jsonl"
    start = int(time.time()) + AHEAD_SECONDS
    start_text = datetime.fromtimestamp(start, UTC).isoformat()

    result = run_callqueue(
        "run", str(source), "--cps", "5", "--window", "2", "--start-at", start_text,
        "--delivery-wait", "0",
        "--timeout", "10", "--report", str(report), "--requests-log", str(log),
        cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(report.read_text())["totals"]["sent"] == ROWS
    requests = read_log(log)
    assert len(requests) == ROWS
    # The emulator's clock is this machine's: nothing arrived before the start.
    assert min(float(r["t"]) for r in requests) >= start, (start, requests)
    # The progress said so while it waited.
    assert "scheduled, starts " in result.stderr, result.stderr
