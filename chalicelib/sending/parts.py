"""What a sender is built from: its collaborators (SenderParts) and its settings
(SenderSettings). chalicelib.wiring builds both; the sender hands them to each of its steps.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.aws.send_queue import SendQueue
from chalicelib.core.jobs import Job
from chalicelib.core.metering import SenderLimits
from chalicelib.core.schedule import VISIBLE_EARLY_SECONDS
from chalicelib.sending.ledger import CallLedger
from chalicelib.sending.limiter import RateLimiter
from chalicelib.sending.publisher import ResponsePublisher
from chalicelib.twilio.gateway import TwilioGateway

# A metered call later than this for its slot is not made (it would bunch with the calls in the
# slots after it): it takes a fresh slot.
LATE_TOLERANCE_SECONDS = 0.1
# A look-up request's read timeout (by default 1.5 times a call's: a slow Twilio answers both
# late), within the sender's 60 s: two tries of 15 s before the batch's calls.
LOOKUP_TIMEOUT_SECONDS = 15.0
# How long before its invocation ends a batch starts no more calls: one started then takes up to
# Twilio's read timeout (10 s), and the batch then writes its outcomes, puts rows back and
# publishes. A batch still working when Lambda ends it deletes nothing: its rows come back after
# the visibility timeout, each delivery a receive towards the dead-letter queue, and the rows it
# called wait out the in-doubt time for a look-up.
FINISH_AFTER_CALLS_SECONDS = 5.0
FINISH_SECONDS = 10.0 + FINISH_AFTER_CALLS_SECONDS


@dataclass(frozen=True)
class SenderParts:
    """What a sender works with. The gateway is a factory so credentials are read on first use,
    not at import. `jobs` reads a job; `suppressed` reads the suppression list (strongly
    consistent: what decides whether a row is called); `suppressed_early`, if given, is a
    cheaper look (eventually consistent) for a batch's first sort, which only spares the rows to
    numbers long suppressed their slots; `stops` says
    which number an outcome says must never be called again (STOP, landline, invalid), if any,
    and `suppress` adds it to the list. `limiter` meters every call on the account's shared
    rate (None: each row goes at its own time). The clock, sleep and randomness are injected
    so tests are exact and fast."""

    gateway: Callable[[], TwilioGateway]
    queue: SendQueue
    publisher: ResponsePublisher
    ledger: CallLedger
    jobs: Callable[[str], Job | None] = lambda _: None
    suppressed: Callable[[set[str]], set[str]] = lambda _: set()
    suppressed_early: Callable[[set[str]], set[str]] | None = None
    stops: Callable[[dict[str, Any]], str | None] = lambda _: None
    suppress: Callable[[dict[str, Any]], object] = lambda _: None
    limiter: RateLimiter | None = None
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)


@dataclass(frozen=True)
class SenderSettings:
    """How a sender sends. An attempt Twilio did not process is retried up to `max_attempts`,
    with backoff from `backoff_base` up to `backoff_cap` seconds. `senders` adds per-sender
    limits; `concurrency` is how many of a batch's calls may be in flight at once;
    `concurrency_limit` the account's Twilio concurrency limit, whose nearness slows the rate;
    `late_tolerance` how late a call may start for its slot; `visible_early` how long before
    they are due rows come (chalicelib.core.schedule); `lookup_timeout` each look-up request's
    read timeout; `finish_seconds` how long before the invocation ends its last call starts."""

    max_attempts: int
    backoff_base: float = 2.0
    backoff_cap: float = 900.0
    senders: SenderLimits = field(default_factory=SenderLimits)
    concurrency: int = 1
    concurrency_limit: int | None = None
    late_tolerance: float = LATE_TOLERANCE_SECONDS
    visible_early: float = VISIBLE_EARLY_SECONDS
    lookup_timeout: float = LOOKUP_TIMEOUT_SECONDS
    finish_seconds: float = FINISH_SECONDS
