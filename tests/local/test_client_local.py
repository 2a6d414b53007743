"""End to end: the `callqueue` CLI and Python API for a deployed stack, against `callqueue up`'s
REST API (a real `chalice local` on loopback, the local runtime's moto server, Twilio emulator
and handlers behind it), with API Gateway's key check in front (tests/gateway.py), which
`chalice local` does not make."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from callqueue.client import Client, Conflict, JobNotFound, NotAuthorized
from callqueue.local.api_server import free_port
from callqueue.local.options import Options
from callqueue.local.runtime import LocalRuntime
from tests.gateway import KeyCheck, ServedApi, gateway_session

pytestmark = pytest.mark.e2e

KEY = "key-of-the-local-usage-plan"
VALID_FROM = "+15005550006"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    options = Options(cps=10, window_seconds=2, schedule_period=1.0, api_port=free_port())
    with LocalRuntime(options) as local:
        assert local.api is not None
        yield local.api.url


def client_for(api: str, key: str | None = KEY) -> Client:
    return Client(
        api_url=api, api_key=key, http=gateway_session(api, ServedApi(KeyCheck(frozenset({KEY}))))
    )


def callqueue(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callqueue.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
        check=False,
    )


def test_remote_submit_watches_to_the_end_and_every_outcome_is_the_rows(
    api: str, tmp_path: Path
) -> None:
    # Row by row what the emulator answers: sent, 21211 (invalid To), 21610 (unsubscribed),
    # and a row the intake refuses before any call.
    expected = {
        **{n: ("sent", None) for n in range(1, 6)},
        6: ("failed", "21211"),
        7: ("failed", "21610"),
        8: ("rejected", None),
    }
    to = [f"+1415558{n:04d}" for n in range(1, 6)] + ["+15005550001", "+15005550004", "+1555"]
    path = tmp_path / "remote.csv"
    lines = ["To,From,Body", *(f"{t},{VALID_FROM},remote {n}" for n, t in enumerate(to, 1))]
    path.write_text("\n".join(lines) + "\n")

    run = callqueue("submit", str(path), "--api-url", api, "--cps", "10", "--window", "2")

    assert run.returncode == 0, run.stderr
    job_id = re.search(rf"{re.escape(str(path))}: job (\S+)", run.stderr)
    assert job_id is not None, run.stderr
    summary = run.stdout.splitlines()
    assert summary[0].split()[:4] == ["job", "state", "rows", "rejected"]
    assert summary[1].split()[:4] == [job_id[1], "completed", "8", "1"]
    assert f"{job_id[1]}: errors: 21211 x1, 21610 x1" in run.stdout
    assert f"{job_id[1]}: rejected row 8: " in run.stdout

    job = client_for(api).job(job_id[1])
    outcomes = job.outcomes()
    assert {o.row: (o.outcome, o.error_code) for o in outcomes} == expected
    assert [o.to for o in outcomes[:7]] == to[:7]
    assert all(o.sid and o.sid.startswith("SM") for o in outcomes[:5])
    assert [(r.row, "+1555" in r.reason) for r in job.rejects()] == [(8, True)]
    saved = job.outcomes(tmp_path / "outcomes.csv")
    assert len(saved.read_text().splitlines()) == 9
    fetched = callqueue("outcomes", job_id[1], "--api-url", api)
    assert fetched.returncode == 0 and fetched.stdout == saved.read_text()


def test_remote_pause_resume_cancel_and_the_apis_refusals(api: str, tmp_path: Path) -> None:
    client = client_for(api)
    path = tmp_path / "steer.csv"
    lines = ["To,From,Body", *(f"+1415559{i:04d},{VALID_FROM},steer {i}" for i in range(60))]
    path.write_text("\n".join(lines) + "\n")
    job = client.submit(path, cps=10, window=2)
    # A job still splitting is neither pausable nor cancellable (409): wait until it sends.
    deadline = time.monotonic() + 120
    while job.status().state not in ("running", "released"):
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.5)
    assert job.pause() == "paused"
    with pytest.raises(Conflict, match=rf"^cannot pause: job {job.job_id} is already paused$"):
        job.pause()
    assert job.resume() in ("running", "released")
    assert job.cancel() == "cancelled"
    with pytest.raises(Conflict, match=r"cannot resume: .* was cancelled"):
        job.resume()

    final = job.wait(poll=0.5, timeout=180)
    assert final.state == "cancelled" and final.finished
    outcomes = job.outcomes()
    assert len(outcomes) == 60
    ended = {(o.outcome, o.error_code) for o in outcomes}
    assert ended <= {("sent", None), ("failed", "cancelled")}
    assert ("failed", "cancelled") in ended

    with pytest.raises(JobNotFound, match=r"^no job nope-1$"):
        client.job("nope-1").status()
    with pytest.raises(NotAuthorized, match=r"^Forbidden \(HTTP 403\)"):
        client_for(api, key="a-wrong-key").jobs()
    refused = callqueue("pause", job.job_id, "--api-url", api)
    assert refused.returncode == 2
    assert refused.stderr == f"callqueue: cannot pause: job {job.job_id} was cancelled\n"
    listed = callqueue("jobs", "--api-url", api)
    assert re.search(rf"^{re.escape(job.job_id)}\s+cancelled\s+60\s", listed.stdout, re.M)
