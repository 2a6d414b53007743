"""SNS adapter: publishes response envelopes to the response topic, grouped into messages of
one job and API (chalicelib.core.response_groups)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from chalicelib.core.batching import (
    SIZE_MARGIN_BYTES,
    EnvelopeTooLargeError,
    Failed,
    chunked_by_size,
    fit_envelope,
    message_size,
    send_with_retries,
)
from chalicelib.core.limits import SNS_MAX_BATCH_BYTES
from chalicelib.core.response_groups import grouped_entries

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


# PublishBatch requests one publish has in flight at once. A sender's batch of 100 responses is
# ten requests: one after another, the batch's invocation (and the instance it holds) waited
# for ten round trips, and for ten times SNS's slowest moments.
PUBLISH_CONCURRENCY = 5
# PublishBatch refuses a request whose messages (bodies and attributes) add up to more than
# 256 KiB whole: an envelope of 40 KB makes six a request, not ten.
_MAX_REQUEST_BYTES = SNS_MAX_BATCH_BYTES - SIZE_MARGIN_BYTES

log = logging.getLogger(__name__)


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
        """Publish envelopes as JSON (ResponseEnvelope.to_json, or one stored earlier) in
        messages that are JSON arrays of envelopes of one job and API, up to 64 KB each
        (response_groups.grouped_entries); messages go up to ten a request and as many as fit
        its bytes, up to `concurrency` requests at once.

        An envelope over a message's limit is published trimmed (chalicelib.core.batching
        .fit_envelope: Twilio's response body first, marked `"truncated": true`), so its
        outcome still travels. Each request's refused entries are retried; if any request
        still fails, the others are published all the same and the first failure is raised
        (a sender's batch then fails, and its redelivery publishes its outcomes again from
        the ledger)."""
        fitted: list[dict[str, Any]] = []
        errors: list[BaseException] = []
        for envelope in envelopes:
            try:
                fitted.append(fit_envelope(envelope))
            except EnvelopeTooLargeError as error:
                # Raised once the others are published: one envelope must not hold back its
                # batch's outcomes.
                log.exception("envelope not published")
                errors.append(error)
        requests = [
            [{**entry, "Id": str(i)} for i, entry in enumerate(batch)]
            for batch in chunked_by_size(grouped_entries(fitted), _size, _MAX_REQUEST_BYTES)
        ]
        if len(requests) <= 1 or self._concurrency == 1:
            for entries in requests:
                self._send_all(entries)
        else:
            with ThreadPoolExecutor(min(self._concurrency, len(requests))) as pool:
                futures = [pool.submit(self._send_all, entries) for entries in requests]
            errors = [e for f in futures if (e := f.exception()) is not None] + errors
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


def _size(entry: Mapping[str, Any]) -> int:
    return message_size(entry["Message"], entry["MessageAttributes"])
