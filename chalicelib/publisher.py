"""SNS adapter: publishes response envelopes to the response topic."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from chalicelib.batching import Failed, chunked, send_with_retries

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


# PublishBatch requests one publish has in flight at once. A sender's batch of 100 responses is
# ten requests: one after another, the batch's invocation (and the instance it holds) waited
# for ten round trips, and for ten times SNS's slowest moments.
PUBLISH_CONCURRENCY = 5


class ResponsePublisher:
    def __init__(
        self,
        sns: SNSClient,
        topic_arn: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        concurrency: int = PUBLISH_CONCURRENCY,
    ) -> None:
        self._sns = sns
        self._topic_arn = topic_arn
        self._sleep = sleep
        self._concurrency = max(1, concurrency)

    def publish(self, envelopes: Sequence[Mapping[str, Any]]) -> None:
        """Publish envelopes as JSON (ResponseEnvelope.to_json, or one stored earlier), ten a
        request, up to `concurrency` requests at once. Each request's refused entries are
        retried; if any request still fails, the others are published all the same and the
        first failure is raised (a sender's batch then fails, and its redelivery publishes its
        outcomes again from the ledger)."""
        requests = [[_entry(str(i), e) for i, e in enumerate(b)] for b in chunked(envelopes)]
        if len(requests) <= 1 or self._concurrency == 1:
            for entries in requests:
                self._send_all(entries)
            return
        with ThreadPoolExecutor(min(self._concurrency, len(requests))) as pool:
            futures = [pool.submit(self._send_all, entries) for entries in requests]
        errors = [error for f in futures if (error := f.exception()) is not None]
        if errors:
            raise errors[0]

    def _send_all(self, entries: list[dict[str, Any]]) -> None:
        send_with_retries(self._send, entries, what="PublishBatch", sleep=self._sleep)

    def _send(self, entries: list[dict[str, Any]]) -> list[Failed]:
        response = self._sns.publish_batch(
            TopicArn=self._topic_arn,
            PublishBatchRequestEntries=entries,  # type: ignore[arg-type]
        )
        return [
            Failed(f["Id"], f["Code"], f.get("Message", ""), f["SenderFault"])
            for f in response.get("Failed", [])
        ]


def _entry(entry_id: str, envelope: Mapping[str, Any]) -> dict[str, Any]:
    # Message attributes let subscribers filter (errors only, one job) without parsing bodies.
    attributes: dict[str, Any] = {
        name: {"DataType": "String", "StringValue": str(envelope[name])}
        for name in ("job_id", "outcome", "api")
    }
    if envelope.get("status") is not None:
        attributes["status"] = {"DataType": "Number", "StringValue": str(envelope["status"])}
    code = (envelope.get("error") or {}).get("code")
    if code is not None:
        # Twilio's codes are numbers; `cancelled` (chalicelib.cancel) is not.
        kind = "Number" if isinstance(code, int) else "String"
        attributes["error_code"] = {"DataType": kind, "StringValue": str(code)}
    return {
        "Id": entry_id,
        "Message": json.dumps(envelope, separators=(",", ":")),
        "MessageAttributes": attributes,
    }
