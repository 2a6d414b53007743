"""Benchmark: every row accounted for, none called twice, under every fault at once.

Runs `callqueue run` on 3,000 generated rows (BENCH_ROWS) with 429s, 500s, resets, lost
responses and crashed invocations injected, and writes bench/faults.json: rows, outcomes,
duplicates (rows Twilio processed more than once: must be 0), unaccounted (must be 0), the
faults injected, and the machine and date it ran on. Not part of `make test` (it takes
minutes)."""

from __future__ import annotations

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

from callqueue.generate import generate_rows, write_file

# The committed size. 10,000 rows at 40 CPS outgrow the local moto: it slows as it holds more
# (README, Benchmarks).
ROWS = int(os.environ.get("BENCH_ROWS", "3000"))
CPS = int(os.environ.get("BENCH_CPS", "100"))
FAULTS = "429=0.05,500=0.02,reset=0.02,lost-response=0.02,crash=0.02"
OUT = Path(__file__).resolve().parent / "faults.json"


def main() -> int:
    with tempfile.TemporaryDirectory() as work:
        source, report, log = (Path(work) / n for n in ("rows.csv", "report.json", "req.jsonl"))
        write_file(source, "csv", generate_rows(ROWS, seed=1, error_rate=0.0))
        started = time.monotonic()
        result = subprocess.run(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "callqueue.cli", "run", str(source), "--cps", str(CPS),
             "--window", "30", "--faults", FAULTS, "--seed", "1",
             "--report", str(report), "--requests-log", str(log)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        elapsed = time.monotonic() - started
        if not report.exists():
            print(result.stdout[-3000:], result.stderr[-6000:], sep="\n", file=sys.stderr)
            print(f"callqueue run exited {result.returncode} without a report", file=sys.stderr)
            return 1
        data = json.loads(report.read_text())
        requests = [json.loads(line) for line in log.read_text().splitlines() if line]
    processed = Counter(r["params"].get("Body") for r in requests if r["processed"])
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
        "exit_code": result.returncode,
        "outcomes": data["totals"],
        "faults_injected": dict(Counter(r["fault"] for r in requests if r["fault"])),
        "duplicates": sum(1 for n in processed.values() if n > 1),
        "unaccounted": data["totals"]["unaccounted"],
        "rate": data["rate"],
        "wall_seconds": round(elapsed, 1),
    }
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0 if results["duplicates"] == 0 and results["unaccounted"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
