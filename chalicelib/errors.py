"""The project's own error types; adapters turn client exceptions into these."""

from __future__ import annotations


class CallqueueError(Exception):
    """Base class for errors raised by callqueue."""


class RetryableError(CallqueueError):
    """A transient failure of an AWS call that persisted through our retries.

    Raised out of a handler so that AWS retries the whole event; nothing is lost.
    """
