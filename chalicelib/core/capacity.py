"""How many sender instances the send queue's trigger may run at once: sized from the account's
calls per second, so the senders can keep up with the rate the schedule hands out."""

from __future__ import annotations

import math

# A sender batch holds up to 3 s of rows and lasts as long as its calls and its publishing: on the
# local stack at 200 CPS, 20 instances fell behind and 50 kept up (docs/configuration.md), about
# 4 calls a second an instance.
CALLS_PER_INSTANCE = 4.0
# Never fewer than this: a batch that publishes slowly holds its instance for seconds, and at low
# rates the instances cost nothing while idle (50: what every rate had before it was sized).
MIN_INSTANCES = 50
# SQS's bounds for an event source mapping's maximum concurrency.
SQS_MIN_CONCURRENCY = 2
SQS_MAX_CONCURRENCY = 1000


def sender_concurrency(account_cps: float) -> int:
    """The send trigger's maximum concurrency for an account's calls per second:
    `ceil(CPS / CALLS_PER_INSTANCE)`, at least MIN_INSTANCES, within SQS's bounds."""
    wanted = math.ceil(account_cps / CALLS_PER_INSTANCE - 1e-9)
    return max(SQS_MIN_CONCURRENCY, min(SQS_MAX_CONCURRENCY, max(MIN_INSTANCES, wanted)))
