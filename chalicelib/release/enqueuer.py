"""The enqueuer: puts a released chunk's rows on the send queue, each delayed until it is due.

A chunk is enqueued whole or the invocation fails: never half enqueued silently.
"""

from __future__ import annotations

import logging

from chalicelib.aws.buckets import Storage
from chalicelib.aws.send_queue import SendQueue
from chalicelib.core.records import QueuedRow
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
        queued = (
            QueuedRow(
                job_id=job_id,
                row=r.row,
                api=r.api,
                params=r.params,
                due_at=start + r.offset,
                job_start=start,
                carried=r.carried,
            )
            for r in rows
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
