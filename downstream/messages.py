"""Unwrapping what the sink queues deliver: SNS notifications and EventBridge events in SQS."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def envelope_of(body: str) -> dict[str, Any]:
    """A response envelope from an SQS message body: the envelope itself (the sink queues
    subscribe with raw delivery) or an SNS notification wrapping it (a subscription made before
    raw delivery, or without it)."""
    data: dict[str, Any] = json.loads(body)
    if data.get("Type") == "Notification" and "Message" in data:
        inner: dict[str, Any] = json.loads(data["Message"])
        return inner
    return data


def envelopes_of(bodies: Iterable[str]) -> list[dict[str, Any]]:
    return [envelope_of(body) for body in bodies]


def events_of(bodies: Iterable[str]) -> list[dict[str, Any]]:
    """EventBridge events, as a rule's SQS target delivers them (the event as the body)."""
    return [json.loads(body) for body in bodies]
