"""Unwrapping what the sink queues deliver: SNS notifications and EventBridge events in SQS."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from chalicelib.core.envelope import MalformedEnvelope, ResponseEnvelope


def envelope_of(body: str) -> ResponseEnvelope:
    """A response envelope from an SQS message body: the envelope itself (the sink queues
    subscribe with raw delivery) or an SNS notification wrapping it (a subscription made before
    raw delivery, or without it). Raises MalformedEnvelope for a body that holds no envelope."""
    try:
        data: Any = json.loads(body)
        if isinstance(data, dict) and data.get("Type") == "Notification" and "Message" in data:
            data = json.loads(data["Message"])
    except (ValueError, TypeError) as error:
        raise MalformedEnvelope(f"the message is not JSON: {error}") from error
    return ResponseEnvelope.from_json(data)


def envelopes_of(bodies: Iterable[str]) -> list[ResponseEnvelope]:
    return [envelope_of(body) for body in bodies]


def events_of(bodies: Iterable[str]) -> list[dict[str, Any]]:
    """EventBridge events, as a rule's SQS target delivers them (the event as the body)."""
    return [json.loads(body) for body in bodies]
