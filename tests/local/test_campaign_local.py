"""End to end: a recipient list and a template, run locally, send exactly the rendered bodies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.local.test_runtime import read_log, run_callqueue

pytestmark = pytest.mark.e2e


def test_run_a_recipient_list_with_a_template_sends_the_rendered_bodies(tmp_path: Path) -> None:
    recipients = tmp_path / "recipients.csv"
    recipients.write_text(
        "phone,name,code\n"
        "+14155550100,Ada,123\n"
        "+14155550101,Zoë 🚀,{{code}}\n"  # a value that looks like a placeholder stays as it is
        "+14155550102,,77\n"  # no name: the default
        "+14155550103,Bob,\n",  # no code and no default: rejected, the placeholder named
        encoding="utf-8",
    )
    report, log = tmp_path / "report.json", tmp_path / "requests.jsonl"

    result = run_callqueue(
        "run", str(recipients), "--cps", "20", "--window", "1",
        "--delivery-wait", "0",
        "--param", "From=+15005550006", "--param", "To={{phone}}",
        "--param", "Body=Hi {{name|there}}, your code is {{code}}",
        "--report", str(report), "--requests-log", str(log),
        cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    sent = sorted(
        (r["params"]["To"], r["params"]["Body"])
        for r in read_log(log)
        if r["path"].endswith("/Messages.json") and r["method"] == "POST"
    )
    assert sent == [
        ("+14155550100", "Hi Ada, your code is 123"),
        ("+14155550101", "Hi Zoë 🚀, your code is {{code}}"),
        ("+14155550102", "Hi there, your code is 77"),
    ]
    totals = json.loads(report.read_text())["totals"]
    assert (totals["rows"], totals["sent"], totals["rejected"]) == (4, 3, 1)
    assert "row 4: placeholder {{code}}: column code is empty" in result.stdout


def test_test_send_sends_the_first_rendered_rows_to_the_given_number_only(tmp_path: Path) -> None:
    recipients = tmp_path / "recipients.jsonl"
    rows = [
        {"phone": "+14155550100", "name": "Ada"},
        {"phone": "+14155550101"},  # no name and no default: rejected, so skipped
        {"phone": "whatsapp:+14155550102", "name": "Zoë"},
        {"phone": "+14155550103", "name": "Bob"},
    ]
    recipients.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    log = tmp_path / "requests.jsonl"

    result = run_callqueue(
        "test-send", str(recipients), "--to", "+1 (415) 555-0199", "--rows", "2",
        "--param", "From=+15005550006", "--param", "To={{phone}}",
        "--param", "Body=Hi {{name}} 👋",
        "--requests-log", str(log),
        cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    sent = [(r["params"]["To"], r["params"]["Body"]) for r in read_log(log)]
    assert sent == [("+14155550199", "Hi Ada 👋"), ("whatsapp:+14155550199", "Hi Zoë 👋")]
    assert "2 of 2 sent to the local Twilio emulator, as a test" in result.stdout
