"""What the runtime sees of the rows' outcomes: the response topic and the dead-letter queue,
read by an observer of its own into a tally of every row's final outcome."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from downstream.messages import envelope_data

log = logging.getLogger(__name__)

FINAL = ("sent", "failed", "unknown", "dead_lettered", "suppressed")


@dataclass
class Tally:
    """Final outcome of every row the runtime has seen, from the response topic and the DLQ."""

    outcomes: dict[tuple[str, int], str] = field(default_factory=dict)
    # Twilio's error code, or `cancelled` for a row of a cancelled job.
    row_codes: dict[tuple[str, int], int | str] = field(default_factory=dict)
    lags: list[float] = field(default_factory=list)
    first_attempts: list[float] = field(default_factory=list)
    # Rows whose latest attempt was "retrying" and that have no final outcome yet.
    retrying: set[tuple[str, int]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # What the outcome file shows of a settled row beside its outcome: to, api, sid and the
    # user's columns that travelled with it (`carried`), from its final envelope or queued row.
    details: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)

    def envelope(self, data: dict[str, Any]) -> None:
        outcome = data.get("outcome")
        key = (str(data["job_id"]), int(data["row"]))
        with self.lock:
            timings = data.get("timings") or {}
            if "lag_seconds" in timings:
                self.lags.append(float(timings["lag_seconds"]))
            if data.get("attempt") == 1 and "started_at" in timings:
                self.first_attempts.append(float(timings["started_at"]))
            if outcome == "retrying" and key not in self.outcomes:
                self.retrying.add(key)
            if outcome in FINAL:
                self.retrying.discard(key)
                self.outcomes[key] = str(outcome)
                self.details[key] = _details(data, data.get("request") or {}, data.get("sid"))
                code = (data.get("error") or {}).get("code")
                if code is not None:
                    self.row_codes[key] = code if isinstance(code, str) else int(code)

    def snapshot(self) -> Tally:
        """A copy taken at one moment: a report built from it counts the same rows in its
        totals, its error codes and its outcome file, while calls still in flight (a paused
        job's last ones) go on settling in the live tally."""
        with self.lock:
            return Tally(
                dict(self.outcomes),
                dict(self.row_codes),
                list(self.lags),
                list(self.first_attempts),
                set(self.retrying),
                details=dict(self.details),
            )

    def error_codes(self) -> Counter[str]:
        """Rows by the error code they ended with: a row counts once, however many times its
        outcome was published (at least once: a redelivered batch publishes it again)."""
        with self.lock:
            return Counter(str(code) for code in self.row_codes.values())

    def dead_lettered(self, job_id: str, row: int, queued: Mapping[str, Any] | None = None) -> None:
        """A row the dead-letter queue holds; `queued`: its QueuedRow JSON, for its details."""
        with self.lock:
            self.outcomes.setdefault((job_id, row), "dead_lettered")
            if queued is not None:
                self.details.setdefault((job_id, row), _details(queued, queued.get("params"), None))

    def rows(self, job_id: str) -> list[tuple[int, str, int | str | None]]:
        """(row, outcome, error code) of every settled row of a job, by row."""
        with self.lock:
            return sorted(
                (row, outcome, self.row_codes.get((j, row)))
                for (j, row), outcome in self.outcomes.items()
                if j == job_id
            )

    def retrying_rows(self, job_id: str) -> int:
        with self.lock:
            return sum(1 for j, _ in self.retrying if j == job_id)

    def counts(self, job_id: str) -> Counter[str]:
        with self.lock:
            return Counter(o for (j, _), o in self.outcomes.items() if j == job_id)


class Observer:
    """Reads the outcomes published to the response topic (through a queue of its own) and the
    rows dead-lettered, into the tally, on threads of its own until stopped."""

    def __init__(self, client: Callable[[str], Any], tally: Tally) -> None:
        self._client = client
        self._tally = tally
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, stage: str, env: Mapping[str, str]) -> None:
        """Subscribe a queue to the stack's response topic, then read it and the DLQ."""
        sqs = self._client("sqs")
        url = sqs.create_queue(QueueName=f"callqueue-{stage}-local-observer")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self._client("sns").subscribe(
            TopicArn=env["RESPONSE_TOPIC_ARN"],
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "true"},
        )
        dlq = sqs.get_queue_url(QueueName=env["DEAD_LETTER_QUEUE"])["QueueUrl"]
        self._spawn(lambda: self._drain(url, self._on_response, delete=True))
        # The DLQ is read without deleting: its messages stay for `callqueue dlq` and redrive.
        self._spawn(lambda: self._drain(dlq, self._on_dead_letter, delete=False))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _spawn(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _drain(self, url: str, handle: Callable[[str], None], *, delete: bool) -> None:
        sqs = self._client("sqs")
        while not self._stop.is_set():
            try:
                messages = sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=1,
                    VisibilityTimeout=30,
                ).get("Messages", [])
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("observer: receive failed")
                time.sleep(0.5)
                continue
            for message in messages:
                handle(message["Body"])
            if delete and messages:
                sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                    ],
                )

    def _on_response(self, body: str) -> None:
        # A message holds the envelopes of one job and API (chalicelib.core.response_groups).
        for data in envelope_data(body):
            self._tally.envelope(data)

    def _on_dead_letter(self, body: str) -> None:
        data = json.loads(body)
        self._tally.dead_lettered(str(data["job_id"]), int(data["row"]), data)


def _details(data: Mapping[str, Any], params: Any, sid: Any) -> dict[str, Any]:
    params = params if isinstance(params, Mapping) else {}
    to = params.get("To", params.get("PhoneNumber"))
    carried = data.get("carried")
    return {
        "to": to if isinstance(to, str) else None,
        "api": data.get("api"),
        "sid": sid if isinstance(sid, str) else None,
        "carried": dict(carried) if isinstance(carried, Mapping) else {},
    }
