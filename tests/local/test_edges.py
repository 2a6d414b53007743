"""End to end on the local runtime: every kind of row a user sends (plain, media-only, content
template, Messaging Service, call, lookup, large and too-large rows) under every fault the
emulator makes of a call (429, 500, reset, lost response, 5xx after creation, slow, crashed
invocation) and of the sender's look-ups. The promises: no row is created twice at Twilio (its
processed requests counted per number), every row ends in one outcome, a row in doubt is settled
by what Twilio holds, and a row too large to travel is rejected with the limit named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from callqueue.generate import mixed_rows, write_file

pytestmark = pytest.mark.e2e

CALL_FAULTS = "429=0.05,500=0.03,reset=0.03,lost-response=0.06,5xx-after=0.06,slow=0.03,crash=0.03"
LOOKUP_FAULTS = "429=0.1,500=0.05,reset=0.05,slow=0.05"


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    return subprocess.run(
        [sys.executable, "-m", "callqueue.cli", *args],
        cwd=cwd,
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_every_kind_under_every_fault_is_created_once_and_accounted_for(tmp_path: Path) -> None:
    source = tmp_path / "mixed.csv"
    rows = list(mixed_rows(150, seed=4))
    kinds = Counter(row["kind"] for row in rows)
    assert all(kinds[k] for k in ("plain", "media", "template", "call", "lookup", "large"))
    write_file(source, "csv", rows)
    too_large = {n for n, row in enumerate(rows, start=1) if row["kind"] == "too-large"}
    report, log = tmp_path / "report.json", tmp_path / "requests.jsonl"

    plan = run("plan", str(source), "--json", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    rejects = {r["row"]: r["reason"] for r in json.loads(plan.stdout)["rejects"]}
    assert set(rejects) == too_large
    assert all("the limit is 65,536" in reason for reason in rejects.values())

    # A 1 s read timeout and 1.2 s slow answers: a slow call times out (in doubt), a slow
    # look-up (allowed 1.5 s) is answered. A row in doubt is settled after the in-doubt time
    # (60 s here), and again after the send queue's visibility timeout (45 s) when its look-up
    # found no slot. The run's default stall limit (168 s here) covers that chain, yet a run
    # with the default once went 168 s without progress and gave up with 2 rows unsettled
    # (issue 25's note): 240 s until that is understood.
    result = run(
        "run", str(source), "--cps", "40", "--window", "3", "--timeout", "240",
        "--delivery-wait", "0",
        "--faults", CALL_FAULTS, "--lookup-faults", LOOKUP_FAULTS, "--slow-seconds", "1.2",
        "--seed", "5", "--report", str(report), "--requests-log", str(log),
        cwd=tmp_path, env={"TWILIO_TIMEOUT_SECONDS": "1.0"},
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    totals = json.loads(report.read_text())["totals"]
    requests: list[dict[str, Any]] = [
        json.loads(line) for line in log.read_text().splitlines() if line.strip()
    ]
    faults = Counter(r["fault"] for r in requests if r["fault"])
    assert {"lost-response", "5xx-after", "slow", "crash"} <= set(faults), faults
    # A message, call or lookup that took effect, by the number it was for: at most once.
    created = Counter(
        str(r["params"].get("To")) for r in requests if r["processed"] and r["method"] == "POST"
    )
    assert created and max(created.values()) == 1, created.most_common(3)
    assert totals["unaccounted"] == 0
    assert totals["rejected"] == len(too_large)
    # Every call that took effect is found again in Twilio's lists: nothing is left unknown,
    # and every row that travels was sent (the emulator accepts all of them).
    assert totals["unknown"] == 0
    assert totals["sent"] == len(rows) - len(too_large)
    assert len(created) == totals["sent"] - kinds["lookup"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lookup-faults", "crash=0.1"], "cannot fail with crash"),
        (["--lookup-faults", "lost-response=0.1,429=0.1"], "cannot fail with lost-response"),
        (["--lookup-faults", "bogus=1"], "--lookup-faults"),
        (["--slow-seconds", "-1"], "expected a finite number >= 0"),
        (["--slow-seconds", "soon"], "expected a number of seconds"),
    ],
)
def test_run_fault_options_are_checked_with_a_one_line_error(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from callqueue.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["run", "calls.csv", *args])

    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
