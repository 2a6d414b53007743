"""End to end: `callqueue run` of messages and calls that the emulator ends delivered,
undelivered and failed, answered, busy and no-answer (and one a machine answers). The emulator's
signed status callbacks reach the callback function through the runtime's function URL, as on AWS
past API Gateway, and every final status shows in the summary, the JSON report and --outcomes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.local.test_runtime import run_callqueue

pytestmark = pytest.mark.e2e

FROM = "+15005550006"
VOICE = "http://demo.twilio.com/docs/voice.xml"
# Row -> (api, To, MachineDetection, the final status, its error code, answered_by).
ROWS = {
    1: ("messages", "+14155550100", "", "delivered", "", ""),
    2: ("messages", "+15005550030", "", "undelivered", "30003", ""),
    3: ("messages", "+15005550080", "", "failed", "30008", ""),
    4: ("calls", "+14155550101", "Enable", "completed", "", "human"),
    5: ("calls", "+15005550081", "", "busy", "", ""),
    6: ("calls", "+15005550082", "", "no-answer", "", ""),
    7: ("calls", "+15005550084", "Enable", "completed", "", "machine_start"),
}


def test_run_shows_every_final_delivery_and_call_status(tmp_path: Path) -> None:
    source = tmp_path / "mixed.csv"
    with source.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["api", "To", "From", "Body", "Url", "MachineDetection"])
        for api, to, amd, *_ in ROWS.values():
            body, url = ("hello", "") if api == "messages" else ("", VOICE)
            writer.writerow([api, to, FROM, body, url, amd])
    report, outcomes = tmp_path / "report.json", tmp_path / "outcomes.csv"
    requests = tmp_path / "requests.jsonl"

    result = run_callqueue(
        "run", str(source), "--cps", "10", "--window", "1",
        "--report", str(report), "--outcomes", str(outcomes), "--requests-log", str(requests),
        cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    # Every call asked for its callbacks at the function URL (its root), none at the REST route.
    logged = [json.loads(line) for line in requests.read_text().splitlines()]
    asked = [e["params"]["StatusCallback"] for e in logged if "StatusCallback" in e["params"]]
    assert len(asked) == len(ROWS)
    assert {urlsplit(url).path for url in asked} == {"/"}, asked
    rows = {int(r["row"]): r for r in csv.DictReader(io.StringIO(outcomes.read_text(), newline=""))}
    assert {
        n: (r["outcome"], r["delivery_status"], r["delivery_error_code"], r["answered_by"])
        for n, r in rows.items()
    } == {n: ("sent", status, code, by) for n, (_, _, _, status, code, by) in ROWS.items()}
    assert all(r["delivered_at"].endswith("Z") for r in rows.values())
    assert rows[5]["call_duration"] == "" and rows[4]["call_duration"].isdigit()
    delivery = json.loads(report.read_text())["delivery"]
    assert delivery["messages"] == {
        "delivered": 1,
        "undelivered": 1,
        "failed": 1,
        "canceled": 0,
        "pending": 0,
    }
    assert delivery["calls"] == {
        "completed": 2,
        "busy": 1,
        "no-answer": 1,
        "failed": 0,
        "canceled": 0,
        "pending": 0,
        "answered_by_machine": 1,
    }
    assert json.loads(report.read_text())["by_delivery_error_code"] == {"30003": 1, "30008": 1}
    summary = result.stdout
    for word in ("message status", "undelivered", "call status", "no-answer", "busy", "30008"):
        assert word in summary, summary
