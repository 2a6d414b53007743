"""Batch APIs (SQS SendMessageBatch, SNS PublishBatch) with per-entry retries.

Both APIs can accept a request yet refuse some of its entries. Refused entries are sent again with
backoff; entries still refused after the last attempt raise, so the invocation fails and AWS
retries the event: an entry is never dropped silently.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

from chalicelib.errors import RetryableError

T = TypeVar("T")

# Both SendMessageBatch and PublishBatch take at most 10 entries per request.
MAX_BATCH = 10


@dataclass(frozen=True)
class Failed:
    id: str
    code: str
    message: str
    sender_fault: bool


def chunked(items: Iterable[T], size: int = MAX_BATCH) -> Iterator[list[T]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def send_with_retries(
    send: Callable[[list[dict[str, Any]]], list[Failed]],
    entries: Sequence[dict[str, Any]],
    *,
    what: str,
    attempts: int = 5,
    base_delay: float = 0.1,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Send `entries` (each with a unique "Id") through `send`, retrying refused entries.

    A refusal that is the sender's fault (a malformed entry) will not change on retry, so it
    raises at once.
    """
    pending = list(entries)
    for attempt in range(1, attempts + 1):
        failures = send(pending)
        if not failures:
            return
        permanent = [f for f in failures if f.sender_fault]
        if permanent:
            first = permanent[0]
            raise ValueError(f"{what}: entry {first.id} refused: {first.code} {first.message}")
        failed_ids = {f.id for f in failures}
        pending = [e for e in pending if e["Id"] in failed_ids]
        if attempt < attempts:
            sleep(base_delay * 2 ** (attempt - 1))
    last = failures[0]
    raise RetryableError(
        f"{what}: {len(pending)} entries still refused after {attempts} attempts "
        f"(last: {last.code} {last.message})"
    )
