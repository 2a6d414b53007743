"""Lambda's timeout for the invocations the worker processes serve (callqueue.local.worker_process).

Lambda ends an invocation at its function's timeout: nothing of it runs after that, and its
batch is not deleted. The sender's correctness leans on it: a row's claim may be taken over
once the in-doubt time has passed, which is longer than the timeout, so no batch is still
running when another delivery takes its rows over (docs/emulator-fidelity.md). A thread cannot
be killed from outside, and a worker process serves several invocations at once, so the end is
cooperative: each invocation carries its deadline (a context variable, carried into the thread
pools it starts), and its next AWS request or Twilio call after the deadline raises
InvocationTimedOut, a BaseException that the handlers' `except Exception` do not catch. A
request in flight at the deadline completes, as one sent just before Lambda ended the
invocation would have reached AWS; a Twilio call that returns after it dies unread, as one
whose function died while waiting.
"""

from __future__ import annotations

import contextvars
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from callqueue.local.lambdas import SimulatedCrash

_DEADLINE: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar(
    "invocation_deadline", default=None
)


class InvocationTimedOut(SimulatedCrash):
    """The invocation ran past its function's timeout."""


@contextmanager
def deadline(
    timeout_seconds: float | None, clock: Callable[[], float] = time.monotonic
) -> Iterator[None]:
    """Within it, `check` ends the invocation once `timeout_seconds` have passed (None: never)."""
    if timeout_seconds is None:
        yield
        return
    token = _DEADLINE.set((clock() + timeout_seconds, timeout_seconds))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def check(clock: Callable[[], float] = time.monotonic) -> None:
    """Raises InvocationTimedOut when the current invocation is past its deadline."""
    current = _DEADLINE.get()
    if current is not None and clock() >= current[0]:
        raise InvocationTimedOut(f"Task timed out after {current[1]:.2f} seconds")


def carry_into_pools() -> None:
    """Thread pools run each task in the context of the thread that submitted it (as
    `asyncio` does for its tasks), so a batch's claims, calls and writes in its pools keep its
    deadline. Once per process; only the worker processes do it."""
    submit = ThreadPoolExecutor.submit
    if getattr(submit, "carries_context", False):
        return

    def submit_in_context(
        self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        return submit(self, contextvars.copy_context().run, fn, *args, **kwargs)

    submit_in_context.carries_context = True  # type: ignore[attr-defined]
    ThreadPoolExecutor.submit = submit_in_context  # type: ignore[method-assign,assignment]


def where(error: BaseException) -> str:
    """The app's frames the invocation was in when it ended, outermost first (`file:line
    function > ...`): which step of a batch outran the timeout."""
    frames = [
        f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}"
        for f in traceback.extract_tb(error.__traceback__)
        if "/chalicelib/" in f.filename or "/downstream/" in f.filename
    ]
    return " > ".join(frames) or "outside the app's code"
