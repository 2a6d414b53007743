"""SNS adapter: publishes response envelopes to the response topic."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from chalicelib.batching import Failed, chunked, send_with_retries

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


class ResponsePublisher:
    def __init__(
        self, sns: SNSClient, topic_arn: str, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._sns = sns
        self._topic_arn = topic_arn
        self._sleep = sleep

    def publish(self, envelopes: Sequence[Mapping[str, Any]]) -> None:
        """Publish envelopes as JSON (ResponseEnvelope.to_json, or one stored earlier)."""
        for batch in chunked(envelopes):
            entries = [_entry(str(i), e) for i, e in enumerate(batch)]
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
