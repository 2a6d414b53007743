"""Batch APIs (SQS SendMessageBatch, SNS PublishBatch, DynamoDB's batch and transaction writes):
requests cut by count and by bytes, sizes measured as each service counts them, envelopes made
to fit a message, and per-entry retries.

Each service refuses a request over its byte limit whole (SQS's BatchRequestTooLong fails all
ten entries, not the one that tipped it over), so a request is filled only up to its limit less
a margin, and an entry too large for any request is kept out of every request and reported.

Both message APIs can accept a request yet refuse some of its entries. Refused entries are sent
again with backoff; entries still refused after the last attempt raise, so the invocation fails
and AWS retries the event: an entry is never dropped silently.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

from chalicelib.core.limits import KIB, SNS_MAX_MESSAGE_BYTES
from chalicelib.errors import CallqueueError, RetryableError

T = TypeVar("T")

# Both SendMessageBatch and PublishBatch take at most 10 entries per request.
MAX_BATCH = 10
# Kept free under every byte limit: what a service counts that we do not (SQS and SNS document
# the body and attributes, not how they count the rest of an entry), and rounding in DynamoDB's
# number sizes.
SIZE_MARGIN_BYTES = 2 * KIB
# The largest envelope (its compact JSON) published or stored whole: one message of SNS, with
# room for its attributes (a few hundred bytes) and the margin. A ledger item and an SQS sink
# message (raw delivery) hold it too, and both limits are at least SNS's.
MAX_ENVELOPE_BYTES = SNS_MAX_MESSAGE_BYTES - 8 * KIB
# A value kept in a trimmed part of an envelope: short scalars (a SID, a status, a number).
_KEPT_VALUE_CHARS = 256
# An error message is Twilio's sentence or an exception's text; past this it is cut.
_KEPT_ERROR_CHARS = 1024


class EntryTooLargeError(CallqueueError):
    """One entry alone is over a request's byte limit: no request can carry it."""

    def __init__(self, size: int, max_bytes: int) -> None:
        super().__init__(f"an entry of {size} bytes is over the limit of {max_bytes} bytes")
        self.size = size
        self.max_bytes = max_bytes


class EnvelopeTooLargeError(CallqueueError):
    """An envelope still over the message limit once its bulky parts were trimmed."""

    def __init__(self, job_id: str, row: int, size: int, max_bytes: int) -> None:
        super().__init__(
            f"job {job_id} row {row}: the response envelope is {size} bytes once trimmed, "
            f"over the limit of {max_bytes} bytes"
        )
        self.job_id = job_id
        self.row = row


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


def chunked_by_size(
    entries: Iterable[T],
    size_of: Callable[[T], int],
    max_bytes: int,
    max_count: int = MAX_BATCH,
) -> Iterator[list[T]]:
    """`entries` in order, in batches of at most `max_count` whose sizes add up to at most
    `max_bytes`. Raises EntryTooLargeError on reaching an entry over `max_bytes` alone: callers
    keep such entries out first, as only they know what becomes of one."""
    batch: list[T] = []
    total = 0
    for entry in entries:
        size = size_of(entry)
        if size > max_bytes:
            raise EntryTooLargeError(size, max_bytes)
        if batch and (len(batch) >= max_count or total + size > max_bytes):
            yield batch
            batch, total = [], 0
        batch.append(entry)
        total += size
    if batch:
        yield batch


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def message_size(body: str, attributes: Mapping[str, Mapping[str, Any]] | None = None) -> int:
    """An SQS or SNS message's size as both count it against their limits: the body's UTF-8
    bytes, and each attribute's name, data type and value."""
    total = utf8_len(body)
    for name, attribute in (attributes or {}).items():
        total += utf8_len(name) + utf8_len(str(attribute["DataType"]))
        if "StringValue" in attribute:
            total += utf8_len(str(attribute["StringValue"]))
        if "BinaryValue" in attribute:
            value = attribute["BinaryValue"]
            total += len(value) if isinstance(value, bytes | bytearray) else utf8_len(value)
    return total


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """A DynamoDB item's size (typed attribute values) as DynamoDB counts it against the 400 KB
    item limit and a request's total, rounded up where DynamoDB's own count is smaller."""
    return sum(utf8_len(name) + _value_size(value) for name, value in item.items())


def _value_size(value: Mapping[str, Any]) -> int:
    kind, data = next(iter(value.items()))
    if kind == "S":
        return utf8_len(data)
    if kind == "N":
        # Stored as about one byte per two significant digits, plus one: never more than this.
        return len(data) + 1
    if kind == "B":
        return len(data) if isinstance(data, bytes | bytearray) else utf8_len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(utf8_len(v) for v in data)
    if kind == "NS":
        return sum(len(v) + 1 for v in data)
    if kind == "BS":
        return sum(len(v) for v in data)
    # Lists and maps: three bytes of their own and one per element, beside the elements.
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in data)
    if kind == "M":
        return 3 + sum(utf8_len(k) + 1 + _value_size(v) for k, v in data.items())
    raise ValueError(f"not a DynamoDB attribute value: {kind}")


def compact_json(value: Any) -> str:
    """JSON as every stage writes an envelope: compact, non-ASCII escaped (so its length is
    its size in bytes)."""
    return json.dumps(value, separators=(",", ":"))


def fit_envelope(
    envelope: Mapping[str, Any], max_bytes: int = MAX_ENVELOPE_BYTES
) -> dict[str, Any]:
    """The envelope, whole if its JSON is within `max_bytes`; otherwise with its bulky parts
    trimmed, each marked `"truncated": true` with its size before (`"truncated_bytes"`), in
    this order until it fits: Twilio's response body, then the error message, then the
    request. A trimmed part keeps its short scalar values (a SID, a status, `To`), so the
    outcome and what the sinks key on still travel.

    Trimming is idempotent: an envelope that fits is returned as it is. Raises
    EnvelopeTooLargeError if even the trimmed envelope is over (only its fixed fields are
    left, so only a limit smaller than any envelope can do it)."""
    fitted = dict(envelope)
    size = len(compact_json(fitted))
    if size <= max_bytes:
        return fitted
    if isinstance(fitted.get("body"), Mapping):
        fitted["body"] = trimmed(fitted["body"])
        size = len(compact_json(fitted))
    error = fitted.get("error")
    if size > max_bytes and isinstance(error, Mapping):
        message = error.get("message")
        if isinstance(message, str) and len(message) > _KEPT_ERROR_CHARS:
            fitted["error"] = {**error, "message": message[:_KEPT_ERROR_CHARS] + "…"}
            size = len(compact_json(fitted))
    if size > max_bytes and isinstance(fitted.get("request"), Mapping):
        fitted["request"] = trimmed(fitted["request"])
        size = len(compact_json(fitted))
    if size > max_bytes:
        raise EnvelopeTooLargeError(str(envelope["job_id"]), int(envelope["row"]), size, max_bytes)
    return fitted


def trimmed(part: Mapping[str, Any]) -> dict[str, Any]:
    """A bulky part of an envelope cut to its short scalar values, marked truncated."""
    kept: dict[str, Any] = {
        key: value
        for key, value in part.items()
        if value is None
        or isinstance(value, bool | int | float)
        or (isinstance(value, str) and len(value) <= _KEPT_VALUE_CHARS)
    }
    kept["truncated"] = True
    kept["truncated_bytes"] = len(compact_json(part))
    return kept


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
