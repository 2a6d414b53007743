"""A job's timing settings through the Python client and the commands: `Client.submit`'s
keywords, `submit`'s and `run`'s options (a bad value is one line and status 2, before anything
is sent), and `status` and `jobs` showing a scheduled job."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from chalice.test import Client as ChaliceClient

from callqueue.client import BadRequest, ClientError
from tests.gateway import InProcessApi, KeyCheck
from tests.handlers.test_client import API, KEY, remote, split, uploaded_key, write_csv
from tests.stack import Stack


@pytest.fixture
def app_client(stack: Stack, tmp_path: Path) -> Iterator[ChaliceClient]:
    import app as app_module

    with ChaliceClient(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as client:
        yield client


@pytest.fixture
def gateway(app_client: ChaliceClient) -> InProcessApi:
    return InProcessApi(app_client.http, KeyCheck(frozenset({KEY})))


@pytest.fixture
def cli(gateway: InProcessApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands' client talks to the app in this process (through the key check)."""
    from callqueue.cli import remote as remote_commands

    monkeypatch.setattr(remote_commands, "client_of", lambda args: remote(gateway))


def test_client_submit_sends_the_timing_the_job_then_shows(
    stack: Stack, app_client: ChaliceClient, gateway: InProcessApi, tmp_path: Path
) -> None:
    client = remote(gateway)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    eastern = start.astimezone(datetime.now().astimezone().tzinfo)

    job = client.submit(
        write_csv(tmp_path / "calls.csv", 2),
        start_at=eastern,
        send_window="08:00-21:00",
        send_days="mon-fri",
        max_per_day=100,
    )
    split(stack, app_client, uploaded_key(stack))

    status = job.status()
    assert (status.state, status.waiting_for, status.start_at) == (
        "scheduled",
        "start",
        start.timestamp(),
    )
    assert status.next_release_at is not None and status.next_release_at < start.timestamp()
    assert (status.raw["send_window"], status.raw["send_days"], status.raw["max_per_day"]) == (
        "08:00-21:00",
        "mon-fri",
        100,
    )
    [summary] = client.jobs()
    assert (summary.state, summary.start_at, summary.waiting_for) == (
        "scheduled",
        start.timestamp(),
        "start",
    )


def test_client_submit_refuses_a_start_without_a_zone_and_a_bad_setting(
    stack: Stack, gateway: InProcessApi, tmp_path: Path
) -> None:
    client = remote(gateway)
    path = write_csv(tmp_path / "calls.csv", 1)

    with pytest.raises(ClientError, match="has no time zone"):
        client.submit(path, start_at=datetime(2026, 12, 7, 9))
    with pytest.raises(BadRequest, match="`max_per_day`"):
        client.submit(path, max_per_day=0)
    with pytest.raises(BadRequest, match="`send_days`"):
        client.submit(path, send_days="funday")
    assert "Contents" not in stack.s3.list_objects_v2(Bucket=stack.env["SOURCE_BUCKET"])


def test_cli_status_and_jobs_show_a_scheduled_job_with_its_start(
    stack: Stack,
    app_client: ChaliceClient,
    cli: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from callqueue.cli import main

    path = write_csv(tmp_path / "calls.csv", 2)
    before = time.time()
    argv = ["submit", str(path), "--api-url", API, "--detach", "--start-at", "in 2h"]
    assert main([*argv, "--send-window", "09:00-17:00", "--max-per-day", "50"]) == 0
    job_id = capsys.readouterr().out.strip()
    split(stack, app_client, uploaded_key(stack))

    assert main(["status", job_id, "--api-url", API]) == 0
    shown = capsys.readouterr().out
    starts = datetime.fromtimestamp(int(before) + 7200, UTC)
    assert re.search(r"^state     scheduled, starts \S+ \S+ UTC \(in (1h59m|2h00m)\)$", shown, re.M)
    found = re.search(r"starts (\S+ \S+) UTC", shown)
    assert found is not None
    # The minute of `in 2h` from the command's time (the minute may turn meanwhile).
    assert found[1] in {(starts + timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M") for m in (0, 1)}
    assert "window    09:00-17:00 mon-sun (recipients' local time)\n" in shown
    assert "per day   at most 50 rows\n" in shown
    assert main(["status", job_id, "--api-url", API, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["waiting_for"] == "start"

    assert main(["jobs", "--api-url", API]) == 0
    assert re.search(
        rf"^{job_id}\s+scheduled\s+2\s+0\s+.*  scheduled, starts ", capsys.readouterr().out, re.M
    )


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--start-at", "in 2 fortnights", "'in 2 fortnights'"),
        ("--start-at", "2026-12-07T09:00", "has no offset"),
        ("--send-window", "25:00-26:00", "'25:00-26:00'"),
        ("--send-days", "funday", "'funday'"),
        ("--max-per-day", "0", "'0'"),
        ("--max-per-day", "-1", "'-1'"),
        ("--max-per-day", "ten", "'ten'"),
    ],
)
@pytest.mark.parametrize("command", ["submit", "run"])
def test_cli_a_bad_timing_option_is_one_line_and_status_2_before_anything_is_sent(
    stack: Stack,
    cli: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    option: str,
    value: str,
    named: str,
) -> None:
    from callqueue.cli import main

    path = write_csv(tmp_path / "calls.csv", 1)
    where = ["--api-url", API] if command == "submit" else []

    assert main([command, str(path), *where, f"{option}={value}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("callqueue: ") and err.count("\n") == 1, err
    assert named in err
    assert "Contents" not in stack.s3.list_objects_v2(Bucket=stack.env["SOURCE_BUCKET"])
