"""The response publisher: ten messages a PublishBatch, several requests at once."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from chalicelib.sending.publisher import ResponsePublisher
from downstream.messages import envelope_data


class FakeSns:
    """publish_batch as SNS answers it; `refuse` names rows whose messages are refused as the
    sender's fault; with `together` set, each request waits until that many are in flight.
    `requests`: every request's entries, as given."""

    def __init__(self, *, together: int = 0, refuse: frozenset[int] = frozenset()) -> None:
        self.published: list[int] = []
        self.requests: list[list[dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._together = threading.Barrier(together, timeout=10) if together else None
        self._refuse = refuse

    def publish_batch(self, TopicArn: str, PublishBatchRequestEntries: list[dict[str, Any]]) -> Any:
        if self._together is not None:
            self._together.wait()
        with self._lock:
            self.requests.append(PublishBatchRequestEntries)
        failed = []
        for entry in PublishBatchRequestEntries:
            rows = [e["row"] for e in envelope_data(entry["Message"])]
            if self._refuse & set(rows):
                failed.append({"Id": entry["Id"], "Code": "InvalidParameter", "SenderFault": True})
            else:
                with self._lock:
                    self.published.extend(rows)
        return {"Successful": [], "Failed": failed}


def envelopes(count: int, jobs: int | None = None) -> list[dict[str, Any]]:
    """Envelopes of `jobs` jobs in turn; by default each of its own job, so each its own
    message."""
    return [
        {"job_id": f"j{i % (jobs or count)}", "row": i, "outcome": "sent", "api": "messages"}
        for i in range(count)
    ]


def test_a_publish_sends_its_requests_at_once_and_every_envelope_once() -> None:
    # 45 envelopes: five requests, all in flight together (the fake waits for all five; one
    # after another, the first would wait alone and fail).
    sns = FakeSns(together=5)
    ResponsePublisher(sns, "arn:topic", concurrency=5).publish(envelopes(45))  # type: ignore[arg-type]
    assert sorted(sns.published) == list(range(45))


def test_a_failed_request_does_not_keep_the_others_from_being_published() -> None:
    sns = FakeSns(refuse=frozenset({12}))
    with pytest.raises(ValueError, match="PublishBatch: entry 2 refused: InvalidParameter"):
        ResponsePublisher(sns, "arn:topic", concurrency=3).publish(envelopes(30))  # type: ignore[arg-type]
    assert sorted(sns.published) == [i for i in range(30) if i != 12]


def test_one_request_at_a_time_when_asked() -> None:
    sns = FakeSns()
    ResponsePublisher(sns, "arn:topic", concurrency=1).publish(envelopes(25))  # type: ignore[arg-type]
    assert sns.published == list(range(25))


def test_envelopes_of_one_job_and_api_go_in_one_message() -> None:
    sns = FakeSns()
    ResponsePublisher(sns, "arn:topic").publish(envelopes(100, jobs=2))  # type: ignore[arg-type]
    [request] = sns.requests
    assert [[e["row"] for e in envelope_data(m["Message"])] for m in request] == [
        list(range(0, 100, 2)),
        list(range(1, 100, 2)),
    ]
