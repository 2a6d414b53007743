"""Benchmark: every row accounted for, none called twice, under every fault at once, for every
kind of row.

Runs `callqueue run` on BENCH_ROWS generated rows (10,000 by default) that mix the kinds a user
sends: plain SMS, media-only MMS, content templates, Messaging Service messages, calls, lookups,
rows near the size limit and rows over it (rejected at the splitter). Every fault kind is injected
on the calls (429, 500, resets, lost responses, 5xx after creation, slow answers, crashed
invocations) and on the sender's look-ups (429, 500, resets, slow answers). It writes
bench/faults.json: outcomes, duplicates (a row Twilio created more than once: must be 0),
unaccounted rows (must be 0), the faults injected, and the machine and date it ran on. Not part of
`make test` (it takes minutes)."""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from callqueue.generate import MIXED_COLUMNS, mixed_rows

ROWS = int(os.environ.get("BENCH_ROWS", "10000"))
CPS = int(os.environ.get("BENCH_CPS", "100"))
FAULTS = os.environ.get(
    "BENCH_FAULTS",
    "429=0.04,500=0.01,reset=0.01,lost-response=0.02,5xx-after=0.01,slow=0.002,crash=0.01",
)
LOOKUP_FAULTS = os.environ.get("BENCH_LOOKUP_FAULTS", "429=0.05,500=0.02,reset=0.02,slow=0.01")
# How late a `slow` fault answers: past the sender's 10 s timeout for a call, within its 15 s
# for a look-up.
SLOW_SECONDS = 11.0
OUT = Path(__file__).resolve().parent / "faults.json"


def main() -> int:
    # BENCH_KEEP=DIR keeps the run's file, report, requests log, outcomes and output there.
    keep = os.environ.get("BENCH_KEEP")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(keep) if keep else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        source, report, log = (work / n for n in ("rows.csv", "report.json", "req.jsonl"))
        with source.open("w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, MIXED_COLUMNS)
            writer.writeheader()
            kinds: Counter[str] = Counter()
            for row in mixed_rows(ROWS):
                kinds[row["kind"]] += 1
                writer.writerow(row)
        started = time.monotonic()
        result = subprocess.run(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "callqueue.cli", "run", str(source), "--cps", str(CPS),
             "--window", "30", "--faults", FAULTS, "--lookup-faults", LOOKUP_FAULTS,
             "--slow-seconds", str(SLOW_SECONDS), "--seed", "1",
             "--report", str(report), "--requests-log", str(log),
             "--outcomes", str(work / "outcomes.csv")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if keep:
            (work / "stdout.txt").write_text(result.stdout)
            (work / "stderr.txt").write_text(result.stderr)
        elapsed = time.monotonic() - started
        if not report.exists():
            print(result.stdout[-3000:], result.stderr[-6000:], sep="\n", file=sys.stderr)
            print(f"callqueue run exited {result.returncode} without a report", file=sys.stderr)
            return 1
        data = json.loads(report.read_text())
        requests = [json.loads(line) for line in log.read_text().splitlines() if line]
    # A row is its number: Twilio's requests that took effect, by the number they were for.
    # A Lookup changes nothing, so asking again is no duplicate: counted apart.
    creates = [r for r in requests if r["processed"] and r["method"] == "POST"]
    processed = Counter(str(r["params"].get("To")) for r in creates)
    lookups = Counter(
        r["path"].rsplit("/", 1)[-1] for r in requests if r["processed"] and r["method"] == "GET"
    )
    results = {
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "rows": ROWS,
        "target_cps": CPS,
        "faults": FAULTS,
        "lookup_faults": LOOKUP_FAULTS,
        "kinds": dict(kinds),
        "exit_code": result.returncode,
        "outcomes": data["totals"],
        "faults_injected": dict(Counter(r["fault"] for r in requests if r["fault"])),
        "duplicates": sum(1 for n in processed.values() if n > 1),
        "lookups_asked_again": sum(1 for n in lookups.values() if n > 1),
        "unaccounted": data["totals"]["unaccounted"],
        "rate": data["rate"],
        "wall_seconds": round(elapsed, 1),
    }
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0 if results["duplicates"] == 0 and results["unaccounted"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
