"""The delivery metrics: one count per message whose final status a status callback recorded,
read by the undelivered-share alarm in .chalice/infrastructure.yaml (UndeliveredRateAlarm)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from chalicelib.observability import Metrics

# A message's final statuses and their metrics. Each is counted once a message: the route counts
# a status only when it was recorded, and the final statuses share a rank, so the first stands.
# `canceled` (a scheduled message called off) says nothing of delivery; `read` follows `delivered`.
DELIVERY_METRICS: Final[Mapping[str, str]] = {
    "delivered": "Delivered",
    "undelivered": "Undelivered",
    "failed": "DeliveryFailed",
}


def count_delivery(metrics: Metrics, status: str) -> None:
    """Count a recorded final status (others are not counted) and flush: one callback is the
    route's unit of work."""
    name = DELIVERY_METRICS.get(status)
    if name is not None:
        metrics.count(name)
        metrics.flush()
