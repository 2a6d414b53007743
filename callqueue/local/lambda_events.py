"""The events Lambda hands a function, built from what the local triggers receive (an SQS
batch, a topic's notification or S3's through a queue, a schedule's run), and what a function's
result asks of its trigger (the batch items to keep); and the period of a `rate(...)` schedule."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any


def is_s3_test_event(message: dict[str, Any]) -> bool:
    # S3 sends a test event when a notification is configured; Lambda never sees it.
    body = json.loads(message["Body"])
    return isinstance(body, dict) and body.get("Event") == "s3:TestEvent"


def s3_event(messages: list[dict[str, Any]]) -> Any:
    return json.loads(messages[0]["Body"])


def sns_event(messages: list[dict[str, Any]]) -> Any:
    note = json.loads(messages[0]["Body"])
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": note.get("TopicArn", "") + ":local",
                "Sns": {
                    "Type": note.get("Type", "Notification"),
                    "MessageId": note.get("MessageId", ""),
                    "TopicArn": note.get("TopicArn", ""),
                    "Subject": note.get("Subject"),
                    "Message": note.get("Message", ""),
                    "Timestamp": note.get("Timestamp", ""),
                    "SignatureVersion": note.get("SignatureVersion", "1"),
                    "Signature": note.get("Signature", ""),
                    "SigningCertUrl": note.get("SigningCertURL", ""),
                    "UnsubscribeUrl": note.get("UnsubscribeURL", ""),
                    "MessageAttributes": note.get("MessageAttributes", {}),
                },
            }
        ]
    }


def batch_item_failures(result: Any) -> set[str]:
    if isinstance(result, dict):
        failures = result.get("batchItemFailures") or []
        return {str(f.get("itemIdentifier")) for f in failures if isinstance(f, dict)}
    return set()


_RATE = re.compile(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: Any) -> float | None:
    """Seconds between runs of a `rate(...)` schedule (a string or Chalice's Rate)."""
    text = expression if isinstance(expression, str) else expression.to_string()
    match = _RATE.fullmatch(text.strip())
    if match is None:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> Any:
    """Lambda's SQS event for a batch of received messages."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


def scheduled_event(account: str, region: str) -> Any:
    """EventBridge's event for a run of a schedule, now."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "account": account,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": region,
        "resources": [],
        "detail": {},
    }
