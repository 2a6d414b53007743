"""End to end: `callqueue run` starts moto and the Twilio emulator and runs the real pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from callqueue.generate import generate_rows, write_file
from callqueue.local.open_rows import NAMED

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]

# The emulator's answers to Twilio's magic numbers (../shared/seeds/twilio-magic-numbers.md).
MESSAGE_TO_CODES = {
    "+15005550001": 21211,
    "+15005550002": 21612,
    "+15005550003": 21408,
    "+15005550004": 21610,
    "+15005550009": 21614,
}
MESSAGE_FROM_CODES = {"+15005550001": 21212, "+15005550007": 21606, "+15005550008": 21611}


def command_env() -> dict[str, str]:
    """The environment without AWS's settings, running this checkout's code from any cwd."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    return {**env, "PYTHONPATH": str(REPO)}


def run_callqueue(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = command_env()
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
        "--window", "3",
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


def test_run_off_a_terminal_writes_plain_lines_and_a_summary(sample_run: dict[str, Any]) -> None:
    result = sample_run["result"]
    assert "\x1b" not in result.stderr + result.stdout and "\r" not in result.stderr
    assert "rows settled" in result.stderr
    assert "dead lettered" in result.stdout and "rejected rows of sample.csv" in result.stdout


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
    # Twilio's credentials, read by the sender alone, in its own process (worker_process).
    assert requests["secrets-manager:GetSecretValue"] >= 1
    assert len(report["jobs"]) == 1
    assert report["sender_scheduling"] == probe_scheduling()[0]
    # 294 valid rows at 50 CPS in 3-second windows: two chunks, so the loop waited once.
    assert requests["s3:CopyObject"] == 2
    assert "300/300 rows settled" in sample_run["result"].stderr  # the progress, off a terminal


PROBE = """
import os, sys, threading
from types import SimpleNamespace
from callqueue.local.worker_process import prioritize
got = prioritize()
from callqueue.local.worker_process import CrashingHttpClient
from chalicelib.twilio.gateway import CapturingHttpClient
policies = []
nice = []
def started():
    policies.append(os.sched_getscheduler(0))
    nice.append(os.getpriority(os.PRIO_PROCESS, 0))
thread = threading.Thread(target=started)
thread.start()
thread.join()
def answer(self, method, url, *args, **kwargs):
    policies.append(os.sched_getscheduler(0))
    return SimpleNamespace(headers={})
CapturingHttpClient.request = answer
CrashingHttpClient(scheduling=got).request("POST", "http://127.0.0.1:9/Messages.json")
policies.append(os.sched_getscheduler(0))
print(got, *(p == os.SCHED_RR for p in policies), sys.getswitchinterval(), nice[0])
"""


def probe_scheduling(**env: str) -> list[str]:
    """What callqueue.local.worker_process.prioritize gives a process here: its answer; whether a
    thread started after it, a Twilio call made by the runtime's client and the same thread
    after the call run under SCHED_RR; the switch interval; and the started thread's nice."""
    probe = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    return probe.stdout.split()


@pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="Linux's scheduling policies")
def test_the_sender_makes_its_calls_under_the_policy_it_reports_and_nothing_else() -> None:
    got, thread, call, after, switch, nice = probe_scheduling()
    # Real-time where allowed (root, or RLIMIT_RTPRIO), for a Twilio call alone: the sender's
    # other threads, and the calling thread once its call is made, are ordinary, favoured
    # where allowed (as root: -10).
    assert got in ("SCHED_RR:10", "normal")
    assert (thread, call, after) == ("False", str(got != "normal"), "False")
    assert float(switch) == 0.0005
    if os.geteuid() == 0:
        assert int(nice) == -10
    # Switched off.
    off = probe_scheduling(CALLQUEUE_REALTIME="0")
    assert off[:4] == ["normal", "False", "False", "False"]
    assert int(off[5]) == os.getpriority(os.PRIO_PROCESS, 0)


def test_a_call_goes_as_is_when_the_real_time_policy_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from callqueue.local import worker_process

    def refuse(*args: Any) -> None:
        raise PermissionError("not allowed")

    monkeypatch.setattr(worker_process.os, "sched_setscheduler", refuse, raising=False)
    made = []
    with worker_process.realtime("SCHED_RR:10"):
        made.append("call")
    assert made == ["call"]


def test_a_dead_worker_process_gets_no_more_invocations(tmp_path: Path) -> None:
    from callqueue.local.worker_process import Worker, serve

    name = "callqueue-local-handle_send_batch"
    server = serve({name: lambda event, _: {"answered": event["n"]}}, dict)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dead = subprocess.Popen([sys.executable, "-c", "pass"], stdin=subprocess.PIPE, text=True)
    dead.wait()
    live = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE, text=True
    )
    worker = Worker("local", ["handle_send_batch"], tmp_path, processes=2)
    # As start() leaves them, the first process dead (its address answers nothing).
    host, port = server.server_address[:2]
    worker._processes = [dead, live]
    worker.urls = ["http://127.0.0.1:1", f"http://{host!s}:{port}"]
    worker._busy = [0, 0]
    try:
        assert worker.invoke(name, {"n": 1}) == {"answered": 1}  # the live one, though as busy
        live.kill()
        live.wait()
        with pytest.raises(RuntimeError, match="not running"):
            worker.invoke(name, {"n": 2})
    finally:
        worker.stop()
        server.shutdown()


def test_run_two_files_are_two_jobs(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.json"
    write_file(first, "jsonl", generate_rows(40, seed=1))
    write_file(second, "json", generate_rows(30, seed=2))
    report = tmp_path / "report.json"

    result = run_callqueue(
        "run", str(first), str(second), "--cps", "40", "--window", "1", "--report", str(report),
        "--delivery-wait", "0",
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


def test_run_with_injected_429s_500s_and_resets_retries_until_every_row_settles(
    tmp_path: Path,
) -> None:
    source = tmp_path / "faults.csv"
    write_file(source, "csv", generate_rows(120, seed=5, error_rate=0.0))
    report, log = tmp_path / "report.json", tmp_path / "requests.jsonl"

    result = run_callqueue(
        "run", str(source), "--cps", "40", "--window", "2", "--delivery-wait", "0",
        "--faults", "429=0.15,500=0.05,reset=0.05",
        "--seed", "11", "--report", str(report), "--requests-log", str(log),
        cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    data, requests = json.loads(report.read_text()), read_log(log)
    faults = Counter(r["fault"] for r in requests if r["fault"])
    assert faults["429"] > 0 and faults["500"] > 0 and faults["reset"] > 0
    totals = data["totals"]
    assert totals["unaccounted"] == 0
    assert totals["sent"] + totals["dead_lettered"] == 120
    # Each row was processed by Twilio once: injected faults were never processed.
    processed = Counter(r["params"]["Body"] for r in requests if r["processed"])
    assert max(processed.values()) == 1
    assert len(processed) == totals["sent"]


def test_run_gives_up_and_exits_1_when_rows_stop_settling(tmp_path: Path) -> None:
    source = tmp_path / "slow.csv"
    write_file(source, "csv", generate_rows(20, seed=3))
    report = tmp_path / "report.json"

    result = run_callqueue(
        "run", str(source), "--latency", "30", "--timeout", "3", "--report", str(report),
        "--delivery-wait", "0",
        cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 1, result.stdout + result.stderr
    assert "giving up" in result.stderr
    data = json.loads(report.read_text())
    assert data["totals"]["unaccounted"] > 0
    assert f"rows without an outcome: {data['totals']['unaccounted']}" in result.stderr
    assert "the send queue holds:" in result.stderr
    # Where the rows stopped: claimed, their calls still in flight at Twilio; or not claimed
    # yet (the run may give up before the sender took them).
    stopped = data["open_rows"]
    assert len(stopped["rows"]) + stopped["unclaimed"] == data["totals"]["unaccounted"]
    assert {r["state"] for r in stopped["rows"]} <= {"calling"}
    for r in stopped["rows"][:NAMED]:
        assert f"job {r['job_id']} row {r['row']}: calling, attempt 1" in result.stderr


def test_plan_json_counts_rows_chunks_and_rejects() -> None:
    result = run_callqueue(
        "plan", str(REPO / "samples" / "sample.csv"), "--cps", "50", "--window", "3", "--json",
        cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert (plan["rows"], plan["valid"], plan["rejected"], plan["chunks"]) == (300, 294, 6, 2)
    assert plan["eta_seconds"] == 293 / 50
    assert [r["row"] for r in plan["rejects"]] == [12, 57, 101, 150, 203, 244]


def test_plan_unreadable_file_exits_2_with_the_reason(tmp_path: Path) -> None:
    binary = tmp_path / "calls.csv"
    binary.write_bytes(b"To,From\x00\x01\x02")
    result = run_callqueue("plan", str(binary), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("callqueue: ")
    assert "Traceback" not in result.stderr


def test_generate_writes_a_file_the_planner_accepts(tmp_path: Path) -> None:
    result = run_callqueue("generate", "jsonl", "25", "--seed", "4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    plan = json.loads(run_callqueue("plan", str(path), "--json", cwd=tmp_path).stdout)
    assert (plan["rows"], plan["rejected"]) == (25, 0)


def test_up_prints_endpoints_and_serves_until_interrupted(tmp_path: Path) -> None:
    import signal

    import boto3

    env = command_env()
    process = subprocess.Popen(
        [sys.executable, "-m", "callqueue.cli", "up"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "Ctrl-C" in line:
            break
    output = "".join(lines)
    endpoint = next(line.split()[2] for line in lines if line.startswith("moto (AWS):"))
    variables = dict(
        line.strip().removeprefix("export ").split("=", 1)
        for line in lines
        if line.startswith("  export ")
    )
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert process.stderr is not None and "Traceback" not in process.stderr.read()
    assert "Twilio emulator: http://127.0.0.1:" in output
    assert variables["SOURCE_BUCKET"] in buckets


def test_a_tally_snapshot_keeps_its_counts_and_codes_while_calls_go_on_settling() -> None:
    from callqueue.local.outcomes import Tally

    def failed(row: int) -> dict[str, Any]:
        return {"job_id": "j", "row": row, "outcome": "failed", "error": {"code": 21212}}

    tally = Tally()
    for row in range(3):
        tally.envelope(failed(row))
    snapshot = tally.snapshot()
    tally.envelope(failed(3))  # a paused job's call still in flight

    assert snapshot.counts("j") == {"failed": 3}
    assert snapshot.error_codes() == {"21212": 3}
    assert [r for r, _, _ in snapshot.rows("j")] == [0, 1, 2]
    assert tally.error_codes() == {"21212": 4}


def test_run_stops_waiting_when_a_job_is_paused_by_systemic_errors(tmp_path: Path) -> None:
    source = tmp_path / "bad-from.jsonl"
    rows = [{"To": f"+1415555{i:04d}", "From": "+15005550001", "Body": f"m{i}"} for i in range(30)]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = tmp_path / "report.json"

    result = run_callqueue(
        "run",
        str(source),
        "--delivery-wait",
        "0",
        "--cps",
        "10",
        "--report",
        str(report),
        cwd=tmp_path,
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert "paused by systemic Twilio errors" in result.stderr
    data = json.loads(report.read_text())
    assert data["jobs"][0]["state"] == "paused"
    assert 0 < data["totals"]["failed"] < 30
    assert data["by_error_code"] == {"21212": data["totals"]["failed"]}


@pytest.mark.parametrize("fault", ["crash", "lost-response"])
def test_run_with_dying_invocations_never_calls_a_row_twice(fault: str, tmp_path: Path) -> None:
    source = tmp_path / "faults.csv"
    write_file(source, "csv", generate_rows(60, seed=8, error_rate=0.0))
    report, log = tmp_path / "report.json", tmp_path / "requests.jsonl"

    result = run_callqueue(
        "run", str(source), "--cps", "30", "--window", "2", "--faults", f"{fault}=0.1",
        "--delivery-wait", "0",
        "--seed", "2", "--report", str(report), "--requests-log", str(log),
        cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    totals, requests = json.loads(report.read_text())["totals"], read_log(log)
    processed = Counter(r["params"]["Body"] for r in requests if r["processed"])
    assert max(processed.values()) == 1  # no row reached Twilio twice
    injected = sum(1 for r in requests if r["fault"] == fault)
    assert injected > 0
    assert totals["unaccounted"] == 0
    # Twilio's message list settles every dropped or crashed call: each row's true outcome.
    assert (totals["sent"], totals["unknown"]) == (60, 0)
