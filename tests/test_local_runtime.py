"""End to end: `callqueue run` starts moto and the Twilio emulator and runs the real pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from callqueue.generate import generate_rows, write_file

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent

# The emulator's answers to Twilio's magic numbers (../shared/seeds/twilio-magic-numbers.md).
MESSAGE_TO_CODES = {
    "+15005550001": 21211,
    "+15005550002": 21612,
    "+15005550003": 21408,
    "+15005550004": 21610,
    "+15005550009": 21614,
}
MESSAGE_FROM_CODES = {"+15005550001": 21212, "+15005550007": 21606, "+15005550008": 21611}


def run_callqueue(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    return subprocess.run(
        [sys.executable, "-m", "callqueue.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def expected_code(params: dict[str, Any]) -> int | None:
    sender = params.get("From")
    if sender in MESSAGE_FROM_CODES:
        return MESSAGE_FROM_CODES[sender]
    return MESSAGE_TO_CODES.get(params.get("To", ""))


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("run")
    report, log = work / "report.json", work / "requests.jsonl"
    result = run_callqueue(
        "run",
        str(REPO / "samples" / "sample.csv"),
        "--cps", "50",
        "--window", "2",
        "--report", str(report),
        "--requests-log", str(log),
        cwd=work,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return {"result": result, "report": json.loads(report.read_text()), "log": read_log(log)}


def test_run_accounts_for_every_row(sample_run: dict[str, Any]) -> None:
    totals = sample_run["report"]["totals"]
    assert totals["unaccounted"] == 0
    assert totals["rows"] == sum(
        totals[k] for k in ("rejected", "suppressed", "sent", "failed", "unknown", "dead_lettered")
    )
    assert totals["rejected"] > 0 and totals["sent"] > 0 and totals["failed"] > 0


def test_run_reaches_twilio_once_per_valid_row(sample_run: dict[str, Any]) -> None:
    totals, log = sample_run["report"]["totals"], sample_run["log"]
    # A final answer (not a 429 or 5xx, which are retried) for each row that was sent or failed.
    answered = [
        r for r in log if r["status"] is not None and r["status"] != 429 and r["status"] < 500
    ]
    assert len(answered) == totals["sent"] + totals["failed"]
    # Every message row has a unique Body: none was answered twice.
    bodies = Counter(r["params"]["Body"] for r in answered if "Body" in r["params"])
    assert bodies and max(bodies.values()) == 1


def test_run_each_magic_number_gets_its_error_code(sample_run: dict[str, Any]) -> None:
    messages = [
        r
        for r in sample_run["log"]
        if r["path"].endswith("/Messages.json")
        and r["method"] == "POST"
        # Channel addresses (whatsapp:) are not magic numbers; the emulator decides those.
        and ":" not in r["params"].get("From", "")
    ]
    assert messages
    for request in messages:
        assert request["code"] == expected_code(request["params"]), request


def test_run_sender_requests_fit_twilios_request_schemas(sample_run: dict[str, Any]) -> None:
    from tests.oai import validate_request

    apis = set()
    for request in sample_run["log"]:
        validate_request(request["path"], request["method"], request["params"])
        apis.add(request["path"].split("/")[2])
    # Messages and Calls (under Accounts), Lookup, Verify and Studio were all exercised.
    assert {"Accounts", "PhoneNumbers", "Services", "Flows"} <= apis


def test_run_reports_rate_and_aws_requests(sample_run: dict[str, Any]) -> None:
    report = sample_run["report"]
    assert report["rate"]["target_cps"] == 50
    assert report["rate"]["achieved_cps"] > 0
    requests = report["aws_requests"]
    assert requests["sqs:SendMessageBatch"] >= 1
    assert requests["sns:PublishBatch"] >= 1
    assert requests["sfn:StartExecution"] == 1
    assert len(report["jobs"]) == 1
    assert "[" in sample_run["result"].stderr  # the progress bar


def test_run_two_files_are_two_jobs(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.json"
    write_file(first, "jsonl", generate_rows(40, seed=1))
    write_file(second, "json", generate_rows(30, seed=2))
    report = tmp_path / "report.json"

    result = run_callqueue(
        "run", str(first), str(second), "--cps", "40", "--window", "1", "--report", str(report),
        cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(report.read_text())
    assert [j["totals"]["rows"] for j in data["jobs"]] == [40, 30]
    assert data["totals"]["unaccounted"] == 0


def test_run_missing_file_exits_2(tmp_path: Path) -> None:
    result = run_callqueue("run", str(tmp_path / "nope.csv"), cwd=tmp_path)
    assert result.returncode == 2
    assert "no such file" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_unreadable_file_fails_its_job_and_exits_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = run_callqueue("run", str(empty), "--window", "1", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "empty" in result.stdout
    assert "Traceback" not in result.stderr
