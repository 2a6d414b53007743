"""Unwrapping what the sink queues deliver: SNS notifications and EventBridge events in SQS."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from chalicelib.core.envelope import MalformedEnvelope, ResponseEnvelope


def envelope_data(body: str) -> list[Any]:
    """The envelopes' JSON in an SQS message body from the response topic: a JSON array of
    envelopes (chalicelib.core.response_groups), or one envelope (published before messages
    were grouped: still in flight, or in a dead-letter queue); either bare (the sink queues
    subscribe with raw delivery) or in an SNS notification (a subscription without raw
    delivery). Raises MalformedEnvelope for a body that is not JSON or holds no envelope; the
    envelopes themselves are checked by ResponseEnvelope.from_json."""
    try:
        data: Any = json.loads(body)
        if isinstance(data, dict) and data.get("Type") == "Notification" and "Message" in data:
            data = json.loads(data["Message"])
    except (ValueError, TypeError) as error:
        raise MalformedEnvelope(f"the message is not JSON: {error}") from error
    if isinstance(data, list):
        if not data:
            raise MalformedEnvelope("the message is an empty array: it holds no envelope")
        return data
    return [data]


def envelopes_of(bodies: Iterable[str]) -> list[ResponseEnvelope]:
    """Every envelope the bodies hold, in order (envelope_data)."""
    return [ResponseEnvelope.from_json(data) for body in bodies for data in envelope_data(body)]


def events_of(bodies: Iterable[str]) -> list[dict[str, Any]]:
    """EventBridge events, as a rule's SQS target delivers them (the event as the body)."""
    return [json.loads(body) for body in bodies]
