"""The enqueuer: puts a released chunk's rows on the send queue, each delayed until it is due.

A chunk is enqueued whole or the invocation fails: never half enqueued silently.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator

from chalicelib.aws.buckets import Storage
from chalicelib.aws.send_queue import SendQueue
from chalicelib.core.records import ChunkRow, QueuedRow
from chalicelib.observability import Metrics, bound

log = logging.getLogger(__name__)


class Enqueuer:
    def __init__(
        self, storage: Storage, queue: SendQueue, *, metrics: Metrics | None = None
    ) -> None:
        self._storage = storage
        self._queue = queue
        self._metrics = metrics

    def enqueue_chunk(self, bucket: str, key: str) -> int:
        rows, metadata = self._storage.read_chunk(bucket, key)
        # The release step stamps these on the object; without them the row times are unknown.
        job_id = metadata["job_id"]
        start = float(metadata["job_start"])
        until = float(metadata.get("until") or 0.0)
        group = int(metadata.get("group") or 0)
        # Absent from a chunk released before rate changes existed: never re-timed.
        released_at = float(metadata.get("released_at", 0.0))
        run_at = float(metadata.get("at", 0.0))
        queued = (
            QueuedRow(
                job_id=job_id,
                row=r.row,
                api=r.api,
                params=r.params,
                due_at=due_at,
                job_start=start,
                carried=r.carried,
                until=until,
                group=group,
                released_at=released_at,
                run_at=run_at,
            )
            for r, due_at in _timed(rows, metadata, start)
        )
        with bound(job_id=job_id):
            try:
                count = self._queue.enqueue(queued)
            except Exception:
                # Some of the chunk's rows may be on the queue: the invocation fails so that
                # AWS delivers the chunk again and all of it is enqueued. The rows sent twice
                # are safe: the call ledger calls a row once, and republishes its outcome.
                log.exception("job %s: %s not wholly enqueued", job_id, key)
                raise
            log.info("job %s: %s enqueued, %d rows", job_id, key, count)
        if self._metrics is not None:
            self._metrics.count("RowsEnqueued", count)
            self._metrics.flush()
        return count


def _timed(
    rows: Iterator[ChunkRow], metadata: dict[str, str], start: float
) -> Iterator[tuple[ChunkRow, float]]:
    """The run's rows with their times: `count` rows from row `first` of the chunk, the first
    due `at`, one every 1/cps seconds (chalicelib.core.slices). A chunk released whole by an
    earlier version carries no run: each row at the job's start plus its offset."""
    if "at" not in metadata:
        yield from ((r, start + r.offset) for r in rows)
        return
    first, count = int(metadata["first"]), int(metadata["count"])
    at, cps = float(metadata["at"]), int(metadata["cps"])
    for k, row in enumerate(itertools.islice(rows, first, first + count)):
        yield row, at + k / cps
