"""The response publisher: ten envelopes a PublishBatch, several requests at once."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from chalicelib.sending.publisher import ResponsePublisher


class FakeSns:
    """publish_batch as SNS answers it; `refuse` names messages refused as the sender's fault;
    with `together` set, each request waits until that many are in flight."""

    def __init__(self, *, together: int = 0, refuse: frozenset[int] = frozenset()) -> None:
        self.published: list[int] = []
        self._lock = threading.Lock()
        self._together = threading.Barrier(together, timeout=10) if together else None
        self._refuse = refuse

    def publish_batch(self, TopicArn: str, PublishBatchRequestEntries: list[dict[str, Any]]) -> Any:
        if self._together is not None:
            self._together.wait()
        failed = []
        for entry in PublishBatchRequestEntries:
            row = json.loads(entry["Message"])["row"]
            if row in self._refuse:
                failed.append({"Id": entry["Id"], "Code": "InvalidParameter", "SenderFault": True})
            else:
                with self._lock:
                    self.published.append(row)
        return {"Successful": [], "Failed": failed}


def envelopes(count: int) -> list[dict[str, Any]]:
    return [{"job_id": "j", "row": i, "outcome": "sent", "api": "messages"} for i in range(count)]


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
