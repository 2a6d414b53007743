"""Benchmark: planning and splitting a file against a bare csv.reader pass over the same file.

Writes BENCH_ROWS message rows (1,000,000 by default) as `callqueue generate` does
(callqueue.generate.generate_rows, seed 1), then times, each in a process of its own so that its
peak memory (ru_maxrss) is its own:

- `csv`: a bare `csv.reader` pass over the file (the floor: reading, nothing else);
- `numbers`: the csv pass plus libphonenumber's parse and validity check of a distinct number a
  row (the floor for a file of distinct recipients: the generated file's numbers repeat, and the
  project keeps the numbers it has checked);
- `read`: the project's CSV reader alone (chalicelib.intake.parsing.read_records: records as
  dicts, byte accounting, the hash-free read);
- `validate`: `read` and every row's checks (chalicelib.intake.rows.checked_rows);
- `plan`: chalicelib.intake.plan.plan, the code path of `callqueue plan`;
- `split`: the splitter's validate-and-chunk pass (Splitter's chunk writing), storing each chunk
  into an in-memory S3 stand-in (the bytes are read and kept by length only, no network).

The same phases run on the code of BENCH_BASELINE (a git revision, default: the commit before the
split work; `git archive` into a temporary directory), in the same run, alternately with this
code, BENCH_REPEAT times (3), so the two sides share the machine's load; each phase keeps its
fastest run by CPU time, and ratio_to_csv is by CPU time (wall time is kept beside it). Writes
bench/split.json (bench/split-distinct.json with BENCH_DISTINCT=1; BENCH_OUT names another file)
with the machine and date. Not part of `make test`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import phonenumbers

# The tree measured is the one on PYTHONPATH (this checkout, or the baseline's); the project is
# appended only as the fallback.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from callqueue.generate import generate_rows, write_file
from chalicelib.config import Settings
from chalicelib.core.jobs import Job
from chalicelib.core.schedule import Schedule
from chalicelib.intake.parsing import read_records
from chalicelib.intake.plan import plan
from chalicelib.intake.rows import Accepted, checked_rows
from chalicelib.intake.splitter import Splitter
from chalicelib.intake.validation.templates import JobParams

try:
    from chalicelib.intake.split_pass import SplitPass
except ImportError:  # the baseline's code splits in Splitter._write_chunks
    SplitPass = None  # type: ignore[assignment,misc]

ROOT = Path(__file__).resolve().parent.parent
ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
BASELINE = os.environ.get("BENCH_BASELINE", "fd700bd")
REPEAT = max(1, int(os.environ.get("BENCH_REPEAT", "3")))
# BENCH_DISTINCT=1: every row to a number of its own (a campaign's file), not the generator's
# few hundred, which the project's number cache answers; written to split-distinct.json.
DISTINCT = os.environ.get("BENCH_DISTINCT", "") == "1"
# BENCH_OUT: where the results go (a smaller run's beside the 1M-row files, not over them).
OUT = Path(
    os.environ.get("BENCH_OUT")
    or Path(__file__).resolve().parent / ("split-distinct.json" if DISTINCT else "split.json")
)
PHASES = ("csv", "numbers", "read", "validate", "plan", "split")


def _csv_pass(path: Path) -> int:
    rows = 0
    with path.open(newline="", encoding="utf-8") as handle:
        for _ in csv.reader(handle):
            rows += 1
    return rows - 1


def _numbers_pass(path: Path) -> int:
    """A bare csv pass plus libphonenumber's parse and validity check of a distinct number a
    row: the least any split that checks numbers pays for a file of distinct recipients. The
    generated file's To values repeat, so the phases below mostly hit the number cache."""
    rows = 0
    with path.open(newline="", encoding="utf-8") as handle:
        for _ in csv.reader(handle):
            number = phonenumbers.parse(f"+1415{2_000_000 + rows % 7_000_000}", None)
            phonenumbers.is_valid_number(number)
            rows += 1
    return rows - 1


def _read_pass(path: Path) -> int:
    with path.open("rb") as stream:
        return sum(1 for _ in read_records(stream, "csv"))


def _validate_pass(path: Path) -> int:
    with path.open("rb") as stream:
        return sum(isinstance(item, Accepted) for item in checked_rows(stream, "csv"))


def _plan_pass(path: Path) -> int:
    with path.open("rb") as stream:
        result = plan(stream, "csv", Schedule(10, 900))
    return result.valid


class _MemoryStorage:
    """The S3 stand-in: a chunk is read back whole, as an upload would read it."""

    def __init__(self) -> None:
        self.bytes = 0
        self.objects = 0

    def put_file(self, bucket: str, key: str, spooled: Any, content_type: str, **meta: str) -> None:
        self.bytes += len(spooled.rewind().read())
        self.objects += 1


def _split_pass(path: Path) -> int:
    settings = Settings.from_env({})
    storage = _MemoryStorage()
    splitter = Splitter(storage, None, None, settings, claims=None)  # type: ignore[arg-type]
    job = Job(
        job_id="bench", bucket="b", key="k.csv", etag="e", state="splitting",
        cps=10, window_seconds=900, created_at=0.0,
    )  # fmt: skip
    with path.open("rb") as stream:
        if SplitPass is None:  # the baseline's code
            counts = splitter._write_chunks(job, stream, "csv", JobParams())  # type: ignore[attr-defined]
        else:
            counts = SplitPass(storage, settings, job).run(stream, "csv", JobParams())
    assert storage.objects == counts.chunks + (1 if counts.rejected else 0)
    return counts.valid


def measure(phase: str, path: Path) -> dict[str, float | int]:
    """One phase, in this process: its seconds, rows and the process's peak memory."""
    run = {
        "csv": _csv_pass,
        "numbers": _numbers_pass,
        "read": _read_pass,
        "validate": _validate_pass,
        "plan": _plan_pass,
        "split": _split_pass,
    }[phase]
    if phase != "csv":
        # Imports are not the pass: they are paid once per Lambda container.
        run(_small_copy(path))
    started, cpu_started = time.perf_counter(), time.process_time()
    rows = run(path)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "rows": rows,
        "peak_mb": round(peak_kb / 1024, 1),
    }


def _small_copy(path: Path) -> Path:
    small = path.with_suffix(".warm.csv")
    with path.open(encoding="utf-8") as source, small.open("w", encoding="utf-8") as out:
        for index, line in enumerate(source):
            if index > 100:
                break
            out.write(line)
    return small


def _tree_of(revision: str, into: Path) -> Path:
    archive = subprocess.run(  # noqa: S603 - git, with a revision the operator gives
        ["git", "archive", revision, "chalicelib", "callqueue"],  # noqa: S607
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def _run(tree: Path, phase: str, path: Path) -> dict[str, float | int]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(  # noqa: S603 - this script
        [sys.executable, __file__, "--measure", phase, str(path)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _rows() -> Iterator[dict[str, Any]]:
    for index, row in enumerate(generate_rows(ROWS, seed=1)):
        # +1 415 200-0000 onwards: valid North American numbers, one a row.
        yield {**row, "To": f"+1415{2_000_000 + index % 7_000_000}"} if DISTINCT else row


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "rows.csv"
        write_file(path, "csv", _rows())
        baseline = _tree_of(BASELINE, Path(scratch) / "baseline")
        sides: dict[str, dict[str, dict[str, float | int]]] = {"current": {}, "baseline": {}}
        for phase in PHASES:
            # The two sides alternately, REPEAT times, each its fastest run by CPU time: on a
            # shared machine the CPU a pass takes varies far less than its wall time.
            for _ in range(REPEAT):
                for side, tree in (("current", ROOT), ("baseline", baseline)):
                    run = _run(tree, phase, path)
                    best = sides[side].get(phase)
                    if best is None or run["cpu_seconds"] < best["cpu_seconds"]:
                        sides[side][phase] = run
                    print(side, phase, run, flush=True)
        size = path.stat().st_size
    for phases in sides.values():
        floor = float(phases["csv"]["cpu_seconds"])
        for phase in PHASES[1:]:
            phases[phase]["ratio_to_csv"] = round(float(phases[phase]["cpu_seconds"]) / floor, 2)
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cores": os.cpu_count(),
        },
        "note": "shared machine: other engineers' builds and tests ran at the same time",
        "rows": ROWS,
        "numbers": "one a row" if DISTINCT else "the generator's few hundred, repeated",
        "file_bytes": size,
        "chunk_storage": "in-memory S3 stand-in (each chunk read back whole, no network)",
        "baseline_revision": BASELINE,
        "current": sides["current"],
        "baseline": sides["baseline"],
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--measure":
        print(json.dumps(measure(sys.argv[2], Path(sys.argv[3]))))
    else:
        main()
