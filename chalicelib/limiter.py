"""The account's send rate, shared by every job and every sender, kept in DynamoDB.

The arithmetic is chalicelib.metering's; this module keeps its state in the rate-limit table
with conditional writes, so any number of concurrent senders (and jobs) together stay within
the account's calls per second:

- `account#<bucket>`: how many of the bucket's slots have been handed out. A sender takes k at
  once (one UpdateItem for a batch's rows due in one bucket), never slots already past.
- `account#aimd`: the adaptive rate (last cut and when). Read at most once a second a container.
- `sender#<From>`: the sender's virtual schedule (its next free time), moved on per message by
  its segments over its messages-per-second.

Items expire (TTL) a few minutes after their time has passed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from chalicelib.metering import Aimd, Grid, Reservation, gcra_starts

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

# A slot handed out must still be ahead when the sender gets to it: this much beyond twice the
# time DynamoDB takes to hand it out.
LEAD_SECONDS = 0.005
LATENCY_WEIGHT = 0.2
EXPIRE_AFTER_SECONDS = 300
AIMD_KEY = "account#aimd"


def _n(value: float | int) -> dict[str, str]:
    # Microsecond precision: DynamoDB numbers are decimal, and repr(float) can be long.
    return {"N": str(Decimal(value).quantize(Decimal("0.000001")))}


class RateLimiter:
    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        *,
        rate: float,
        increase: float = 0.05,
        decrease: float = 0.7,
        cooldown: float = 1.0,
        state_ttl: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`rate`: the account's calls per second (the ceiling). After a cut the rate grows back
        by `increase` of it per second; a cut multiplies by `decrease`, at most once per
        `cooldown` seconds however many senders see the same congestion."""
        self._db = dynamodb
        self._table = table
        self.grid = Grid(rate)
        self._increase = increase
        self._decrease = decrease
        self._cooldown = cooldown
        self._state_ttl = state_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._aimd = Aimd(rate)
        self._aimd_read_at = float("-inf")
        # How long taking slots takes (a moving average): slots are taken that far ahead.
        self._latency = 0.0

    # -- the account's slots ---------------------------------------------------------------

    def schedule(
        self,
        due: Sequence[float],
        horizon: float,
        granted: Callable[[list[tuple[int, float]]], None] | None = None,
    ) -> list[float | None]:
        """A slot time for each call due at `due[i]`, in the order they are due; None for calls
        with no slot in the buckets that start within `horizon` of the earliest slot this sender
        can still use (now, plus the time DynamoDB takes to answer). A bucket taken is used
        whole, so a slot may lie up to one bucket past the horizon.

        A call may go up to one bucket (about 100 ms) before it is due: the slots of a bucket are
        handed out in order, not matched to each call's exact time. `granted`, if given, is told
        each bucket's slots, `(i, slot)`, as soon as they are taken: the first bucket's slots are
        near, and must not wait while the next buckets are asked for."""
        now = self._clock()
        # Slots are taken far enough ahead that the answer arrives before the first of them.
        earliest = now + LEAD_SECONDS + 2 * self._latency
        usable = self.grid.usable(self.rate(now))
        times: list[float | None] = [None] * len(due)
        pending = sorted(range(len(due)), key=lambda i: due[i])
        bucket_of = {i: self.grid.bucket(max(due[i], earliest)) for i in pending}
        cursor = self.grid.bucket(earliest)
        while pending:
            bucket = max(cursor, bucket_of[pending[0]])
            if self.grid.start(bucket) > earliest + horizon:
                break
            cursor = bucket + 1
            least = self.grid.first_counter(bucket, earliest, usable)
            if least >= usable:
                continue  # the bucket's usable slots are past
            group = [i for i in pending if bucket_of[i] <= bucket]
            asked = self._clock()
            first = self._take(bucket, len(group), least)
            with self._lock:
                self._latency += LATENCY_WEIGHT * (self._clock() - asked - self._latency)
            slots = [
                self.grid.slot_time(bucket, c)
                for c in range(max(first, least), min(first + len(group), usable))
            ]
            # The earliest calls get the slots; the rest try the next bucket.
            # Every slot taken is used, even past the horizon (by less than a bucket): one the
            # counter handed out and nobody called would be lost to the account.
            taken = list(zip(group, slots, strict=False))
            for i, slot in taken:
                times[i] = slot
            if granted is not None and taken:
                granted(taken)
            pending = [i for i in pending if times[i] is None]
        return times

    def _take(self, bucket: int, count: int, least: int) -> int:
        """Hand out `count` counters of `bucket`; returns the first. One request: a bucket
        nobody has used yet starts at `least` (its counters before that are past). Counters
        below `least` can still come back when others left them unused (the caller does not
        use them: no slot is ever handed out twice, and a past one is simply lost)."""
        response = self._db.update_item(
            TableName=self._table,
            Key={"pk": {"S": f"account#{bucket}"}},
            UpdateExpression="SET n = if_not_exists(n, :least) + :k, expires_at = :exp",
            ExpressionAttributeValues={
                ":k": _n(count),
                ":least": _n(least),
                ":exp": _n(int(self.grid.start(bucket)) + EXPIRE_AFTER_SECONDS),
            },
            ReturnValues="UPDATED_NEW",
        )
        return int(Decimal(response["Attributes"]["n"]["N"])) - count

    # -- the adaptive rate -----------------------------------------------------------------

    def rate(self, now: float | None = None) -> float:
        """The account's rate now, as the last cut left it and time has grown it back."""
        now = self._clock() if now is None else now
        with self._lock:
            if now - self._aimd_read_at >= self._state_ttl:
                self._aimd = self._read_aimd()
                self._aimd_read_at = now
            aimd = self._aimd
        return aimd.effective(now, self.grid.rate, self._increase)

    def congested(self) -> bool:
        """Twilio pushed back (429, or concurrency near the limit): cut the rate, unless another
        sender cut it within the cool-down. True if this call cut it."""
        now = self._clock()
        with self._lock:
            current = self._aimd
        cut = current.cut(now, self.grid.rate, self._increase, self._decrease, floor=1.0)
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"pk": {"S": AIMD_KEY}},
                UpdateExpression="SET rate = :r, cut_at = :t",
                ConditionExpression="attribute_not_exists(cut_at) OR cut_at < :since",
                ExpressionAttributeValues={
                    ":r": _n(cut.rate),
                    ":t": _n(now),
                    ":since": _n(now - self._cooldown),
                },
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            with self._lock:
                self._aimd = self._read_aimd()
                self._aimd_read_at = now
            return False
        with self._lock:
            self._aimd, self._aimd_read_at = cut, now
        log.info("rate cut to %.1f calls/s after Twilio pushed back", cut.rate)
        return True

    def _read_aimd(self) -> Aimd:
        item = self._db.get_item(
            TableName=self._table, Key={"pk": {"S": AIMD_KEY}}, ConsistentRead=True
        ).get("Item")
        if not item or "cut_at" not in item:
            return Aimd(self.grid.rate)
        return Aimd(float(item["rate"]["N"]), float(item["cut_at"]["N"]))

    # -- senders' own limits ---------------------------------------------------------------

    def reserve_sender(
        self, sender: str, costs: Sequence[float], mps: float, not_before: float, horizon: float
    ) -> Reservation:
        """Start times for messages from `sender` costing `costs` segments, on its own schedule;
        none taken when its next free time is beyond now + `horizon`."""
        now = self._clock()
        key = {"pk": {"S": f"sender#{sender}"}}
        duration = sum(costs) / mps
        expires = _n(int(max(now, not_before) + duration) + EXPIRE_AFTER_SECONDS)
        for _ in range(3):
            try:
                self._db.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="SET tat = :end, expires_at = :exp",
                    ConditionExpression="attribute_not_exists(tat) OR tat <= :nb",
                    ExpressionAttributeValues={
                        ":end": _n(not_before + duration),
                        ":nb": _n(not_before),
                        ":exp": expires,
                    },
                )
            except self._db.exceptions.ConditionalCheckFailedException:
                pass
            else:
                return Reservation(tuple(gcra_starts(not_before, not_before, list(costs), mps)), 0)
            try:
                response = self._db.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="SET tat = tat + :d, expires_at = :exp",
                    ConditionExpression="tat > :nb AND tat <= :latest",
                    ExpressionAttributeValues={
                        ":d": _n(duration),
                        ":nb": _n(not_before),
                        ":latest": _n(now + horizon),
                        ":exp": expires,
                    },
                    ReturnValues="UPDATED_NEW",
                )
            except self._db.exceptions.ConditionalCheckFailedException:
                tat = self._sender_tat(key)
                if tat is not None and tat > not_before:
                    return Reservation(None, tat)
                continue  # its schedule fell behind `not_before` in between: start afresh
            start = float(response["Attributes"]["tat"]["N"]) - duration
            return Reservation(tuple(gcra_starts(start, start, list(costs), mps)), 0)
        raise RuntimeError(f"could not reserve {sender}'s schedule")  # pragma: no cover

    def _sender_tat(self, key: dict[str, Any]) -> float | None:
        item = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        return float(item["tat"]["N"]) if item and "tat" in item else None
