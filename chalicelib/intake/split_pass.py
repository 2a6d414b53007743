"""One pass of the splitter over a file: every record validated, the valid ones written into
chunks, the rejected ones into the rejects report; and, when the invocation's time runs low, the
place it stopped (chalicelib.intake.checkpoint) stored for a continuation to take up.

What a pass stores when it stops, all in the holding bucket under the checkpoint's prefix
(`checkpoints/<job>/<part>-<records>/`, so two deliveries that stop at different records
never overwrite each other's): `checkpoint.json`, each group's partial chunk
(`group-<n>.jsonl`) and the rejects report so far (`rejects.csv`). Full chunks are stored under
their final keys as they fill, the same bytes whichever invocation writes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Protocol

from chalicelib.aws.buckets import SpooledFile, group_chunk_key, rejects_key
from chalicelib.config import Settings
from chalicelib.core.costs import CostEstimate, PriceTable
from chalicelib.core.jobs import Job
from chalicelib.core.records import ChunkRow
from chalicelib.core.schedule import Schedule
from chalicelib.core.slices import Group
from chalicelib.core.windows import SendWindow
from chalicelib.errors import CallqueueError
from chalicelib.intake.carry import Carry
from chalicelib.intake.checkpoint import Budget, Checkpoint, cost_lines
from chalicelib.intake.chunking import ChunkWriter
from chalicelib.intake.parsing import ByteStream, Format
from chalicelib.intake.parsing.base import FileFormatError
from chalicelib.intake.rows import Rejected, checked_rows, zoned
from chalicelib.intake.validation.templates import JobParams

_CHECKPOINT: Final = "checkpoint.json"


@dataclass(frozen=True)
class Counts:
    rows: int
    valid: int
    rejected: int
    chunks: int
    # What the valid rows will cost, by the shipped price table.
    cost: CostEstimate | None = None
    # The valid rows' groups by time zones, with their chunks (chalicelib.core.slices).
    groups: tuple[Group, ...] = ()


class MissingCheckpoint(CallqueueError):
    """The job item names a checkpoint the holding bucket does not have (deleted by hand)."""


class Objects(Protocol):
    """What a pass needs of S3 (chalicelib.aws.buckets.Storage)."""

    def put_file(
        self, bucket: str, key: str, spooled: SpooledFile, content_type: str, **metadata: str
    ) -> None: ...

    def read_small(self, bucket: str, key: str, limit: int) -> bytes | None: ...

    def lines_of(self, bucket: str, key: str) -> Iterator[bytes]: ...


# A part of a split re-reads the records before it (the content hash covers every byte): one
# that adds less than this share of them is spending its time re-reading, and the parts after
# it would add less still, until one spends all its time re-reading and is killed.
MIN_PART_PROGRESS = 0.1


def _check_progress(start: int, rows: int, checked_from: int) -> None:
    """Raise, failing the job with its reason, when a continuation from `start` records (at
    least `checked_from`) added too few to be worth another: the file is too large to split
    within Lambda's time."""
    if start and start >= checked_from and rows - start < start * MIN_PART_PROGRESS:
        raise FileFormatError(
            f"the file is too large to split: each part re-reads the {start:,} records before"
            f" it and this one had time for only {rows - start:,} more; split it into files of"
            f" at most {start:,} rows"
        )


def checkpoint_prefix(job_id: str, part: int, records: int) -> str:
    # One prefix for all checkpoints, so the splitter may read back these and no other objects.
    return f"checkpoints/{job_id}/{part}-{records}/"


# A checkpoint's JSON holds a line per group and per priced (api, kind, country): far below this.
MAX_CHECKPOINT_BYTES: Final = 4 * 1024 * 1024


def load_checkpoint(storage: Objects, bucket: str, prefix: str) -> Checkpoint:
    data = storage.read_small(bucket, prefix + _CHECKPOINT, MAX_CHECKPOINT_BYTES)
    if data is None:
        raise MissingCheckpoint(f"the job's checkpoint {prefix}{_CHECKPOINT} is not stored")
    return Checkpoint.of_text(data.decode("utf-8"))


class SplitPass:
    """Splits one job's file; `resume` is where an earlier invocation stopped (None: the start)."""

    def __init__(
        self,
        storage: Objects,
        settings: Settings,
        job: Job,
        *,
        resume: tuple[str, Checkpoint] | None = None,
        budget: Budget | None = None,
    ) -> None:
        self._storage = storage
        self._settings = settings
        self._job = job
        self._resume = resume
        self._budget = budget
        schedule = Schedule(job.cps, job.window_seconds)
        self._writer = ChunkWriter(self._put, schedule.chunk_size, job.cps)
        self._rejects = SpooledFile()
        self._cost = CostEstimate(PriceTable.load())
        self.stopped: str | None = None

    def _put(self, group: int, number: int, chunk: SpooledFile) -> None:
        job_id = self._job.job_id
        key = group_chunk_key(job_id, group, number)
        self._storage.put_file(
            self._settings.holding_bucket,
            key,
            chunk,
            "application/x-ndjson",
            job_id=job_id,
            group=str(group),
            chunk=str(number),
        )

    def run(self, stream: ByteStream, fmt: Format, params: JobParams) -> Counts | Checkpoint:
        """The file's counts, or the checkpoint this pass stopped at (stored, under
        `self.stopped`): then the stream has not been read to its end."""
        try:
            start = self._restore()
            return self._records(stream, fmt, params, start)
        finally:
            self._writer.close()
            self._rejects.close()

    def _restore(self) -> Checkpoint:
        if self._resume is None:
            self._rejects.write_row(["row", "reason"])
            return Checkpoint(part=0, records=0, valid=0, rejected=0)
        prefix, point = self._resume
        bucket = self._settings.holding_bucket
        for line in self._storage.lines_of(bucket, prefix + "rejects.csv"):
            self._rejects.write_raw(line)
        for index, group in enumerate(point.groups):
            lines = self._storage.lines_of(bucket, f"{prefix}group-{index}.jsonl")
            self._writer.restore(group, lines)
        point.cost_into(self._cost)
        return point

    def _records(
        self, stream: ByteStream, fmt: Format, params: JobParams, start: Checkpoint
    ) -> Counts | Checkpoint:
        job = self._job
        window = SendWindow.parse(job.send_window, job.send_days)
        rows, valid, rejected = start.records, start.valid, start.rejected
        budget = self._budget
        read = checked_rows(
            stream,
            fmt,
            self._settings.default_region,
            params=params,
            carry=Carry.of_job(job),
            skip=start.records,
        )
        for read_item in read:
            rows += 1
            item, zones = zoned(read_item, window)
            if isinstance(item, Rejected):
                rejected += 1
                self._rejects.write_row([str(item.number), item.reason])
            else:
                request = item.request
                self._cost.add(request)
                row = ChunkRow(item.number, request.api, request.params, 0.0, request.carried)
                self._writer.add(zones, item.number, row, item.params_json)
                valid += 1
            if budget is not None and rows % budget.check_every == 0 and budget.exhausted():
                _check_progress(start.records, rows, budget.progress_checked_from)
                return self._stop(start.part + 1, rows, valid, rejected)
        groups = self._writer.finish()
        if rejected:
            self._storage.put_file(
                self._settings.reports_bucket, rejects_key(job.job_id), self._rejects, "text/csv"
            )
        cost = self._cost
        return Counts(rows, valid, rejected, self._writer.chunks, cost=cost, groups=groups)

    def _stop(self, part: int, rows: int, valid: int, rejected: int) -> Checkpoint:
        bucket = self._settings.holding_bucket
        prefix = checkpoint_prefix(self._job.job_id, part, rows)
        states = []
        for index, (state, partial) in enumerate(self._writer.state()):
            self._storage.put_file(bucket, f"{prefix}group-{index}.jsonl", partial, "text/plain")
            states.append(state)
        self._storage.put_file(bucket, prefix + "rejects.csv", self._rejects, "text/csv")
        priced, unpriced = cost_lines(self._cost)
        point = Checkpoint(part, rows, valid, rejected, tuple(states), priced, unpriced)
        text = SpooledFile()
        text.write_line(point.to_text())
        try:
            self._storage.put_file(bucket, prefix + _CHECKPOINT, text, "application/json")
        finally:
            text.close()
        self.stopped = prefix
        return point
