"""End to end: `callqueue run --outcomes` carries each row's reference and the kept columns, in
the columns of outcomes.csv, and the emulator's request log shows none of them sent."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.local.test_runtime import read_log, run_callqueue

pytestmark = pytest.mark.e2e

FROM = "+15005550006"
REFERENCES = {
    1: "cust-1",
    2: "Zoë 🙂 李",
    3: "a,b",
    4: 'say "hi"',
    5: "line one\nline two",
    6: "",
    7: "r" * 256,
    8: "r" * 257,  # too long: rejected, the reason names the column
    9: "to a STOP number",  # Twilio refuses it: failed, with its reference still
}


def test_run_outcomes_carry_each_rows_reference_never_sent(tmp_path: Path) -> None:
    source = tmp_path / "campaign.csv"
    with source.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["To", "From", "Body", "Ref", "Customer Name"])
        for row, ref in REFERENCES.items():
            to = "+15005550004" if row == 9 else f"+1415555{row:04d}"
            writer.writerow([to, FROM, f"hello {row}", ref, f"Name {row}"])
    outcomes, log = tmp_path / "outcomes.csv", tmp_path / "requests.jsonl"

    result = run_callqueue(
        "run", str(source), "--cps", "10", "--window", "1",
        "--reference-column", "ref", "--keep-columns", "Customer Name",
        "--outcomes", str(outcomes), "--requests-log", str(log),
        cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    text = outcomes.read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert list(rows[0]) == [
        "job_id", "row", "to", "api", "outcome", "error_code", "sid", "reason", "reference",
        "delivery_status", "delivery_error_code", "delivered_at", "call_duration", "answered_by",
        "Customer Name",
    ]  # fmt: skip
    by_row = {int(r["row"]): r for r in rows}
    assert {n: r["outcome"] for n, r in by_row.items()} == {
        **{n: "sent" for n in range(1, 8)},
        8: "rejected",
        9: "failed",
    }
    assert {n: r["reference"] for n, r in by_row.items()} == {
        **{n: ref for n, ref in REFERENCES.items() if n != 8},
        8: "",
    }
    assert by_row[8]["reason"] == "ref: 257 characters; at most 256"
    assert by_row[9]["error_code"] == "21610"
    assert {n: r["Customer Name"] for n, r in by_row.items() if n != 8} == {
        n: f"Name {n}" for n in REFERENCES if n != 8
    }
    assert by_row[1]["to"] == "+14155550001" and by_row[1]["sid"].startswith("SM")

    posted = [r for r in read_log(log) if r["method"] == "POST"]
    assert len(posted) == 8
    for request in posted:
        sent = json.dumps(request, ensure_ascii=False)
        assert "Name " not in sent
        assert not any(ref and ref in sent for n, ref in REFERENCES.items() if n != 9)
