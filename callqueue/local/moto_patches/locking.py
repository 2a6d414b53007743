"""Requests to moto's backends made one at a time where they touch the same state: moto's
backends take no locks, and AWS applies each write to an item, or each change to a queue,
atomically."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from moto.core.botocore_stubber import BotocoreStubber
from moto.sqs.models import Queue

from callqueue.local.moto_patches.lock_keys import MAIN, lock_keys


class BackendLock:
    """Requests to moto's backends made one at a time where they touch the same state (harness
    only).

    moto's backends take no locks, and its server runs each request on a thread of its own. So
    two concurrent UpdateItems on one item can read the same value and both write it plus one:
    measured here, 20 threads adding 1 to one counter 100 times each lost 39 of 2,000 updates
    and answered one with no attributes. DynamoDB applies each write to an item atomically, and
    a conditional write is checked against the latest state; the account's rate counter and the
    call ledger's claims rely on exactly that. SQS likewise failed a ReceiveMessage ("Set
    changed size during iteration") while a SendMessage changed the same queue.

    Each request runs whole holding the locks of what it touches (`lock_keys`), taken all at
    once or none (`_acquire`). One lock for everything made a queue that AWS does not have: at
    200 calls a second, an UpdateItem of the account's rate counter took about 120 ms (median),
    waiting behind other tables' writes and other services' requests, where DynamoDB answers in
    a few (a slot handed out that late is past); and a receive from the send queue waited about
    50 ms behind the sinks' queues and the topic's deliveries.

    The locks are let go only where a request waits on something outside the backend: a long
    poll waiting for messages, and an Invoke waiting for the runtime's function host (whose
    handler makes requests of its own)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._local = threading.local()

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _acquire(self, locks: list[threading.Lock]) -> None:
        # All or none: a lock found taken is waited for holding none of the others, so a
        # request needing several (a publish: five) does not keep them from everyone else while
        # it waits for the last; and no two requests can wait on each other.
        while True:
            taken: list[threading.Lock] = []
            for lock in locks:
                if not lock.acquire(blocking=False):
                    break
                taken.append(lock)
            else:
                self._local.held = locks
                return
            for lock in reversed(taken):
                lock.release()
            blocked = locks[len(taken)]
            with blocked:
                pass

    def _release(self) -> list[threading.Lock]:
        locks: list[threading.Lock] = self._local.held
        self._local.held = None
        for lock in reversed(locks):
            lock.release()
        return locks

    @contextmanager
    def holding(self, keys: Iterable[str] = (MAIN,)) -> Iterator[None]:
        """Hold these locks (taken in a fixed order, so requests never deadlock)."""
        self._acquire([self._lock(key) for key in sorted(set(keys))])
        try:
            yield
        finally:
            self._release()

    @property
    def held(self) -> bool:
        """Whether this thread holds locks."""
        return bool(getattr(self._local, "held", None))

    @contextmanager
    def released(self) -> Iterator[None]:
        """Let this thread's locks go for a wait, if it holds any."""
        if not self.held:
            yield
            return
        locks = self._release()
        try:
            yield
        finally:
            self._acquire(locks)


BACKENDS = BackendLock()


class Serialized:
    """WSGI middleware: the request's body read first, then the application run holding the
    request's locks, its response produced whole before they are let go."""

    def __init__(self, app: Callable[..., Iterable[bytes]], lock: BackendLock) -> None:
        self._app = app
        self._lock = lock

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = buffered_body(environ)
        keys = set(lock_keys(environ, body))
        while True:
            with self._lock.holding(keys):
                # The keys were read from the backends before their locks were held: a queue
                # subscribed or given a dead-letter queue meanwhile needs its lock too.
                now = set(lock_keys(environ, body))
                if now <= keys:
                    result = self._app(environ, start_response)
                    try:
                        return list(result)
                    finally:
                        close = getattr(result, "close", None)
                        if close is not None:
                            close()
            keys |= now


def buffered_body(environ: dict[str, Any]) -> bytes:
    """A WSGI request's body, read whole and put back for the app behind: neither chunked
    (werkzeug would read none of it) nor terminated any more."""
    body: bytes = environ["wsgi.input"].read()
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("wsgi.input_terminated", None)
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    return body


def serialize_long_polls(lock: BackendLock) -> None:
    """A long poll waits for messages with the lock let go, so the sends it waits for can run."""
    wait_for_messages = Queue.wait_for_messages

    def wait_unlocked(self: Queue, timeout: int) -> None:
        with lock.released():
            wait_for_messages(self, timeout)

    Queue.wait_for_messages = wait_unlocked  # type: ignore[method-assign]


def serialize_in_process(lock: BackendLock) -> None:
    """In-process moto (tests' mock_aws) has the same missing locking as its server: a request
    is dispatched on the caller's thread, and the state machine's executions run on threads of
    their own. So every request dispatched there runs whole under the lock too. A request made
    while the thread holds it (a backend calling another) runs as part of the one that holds it."""
    process_request = BotocoreStubber.process_request

    def process_locked(self: BotocoreStubber, request: Any) -> Any:
        if lock.held:
            return process_request(self, request)
        with lock.holding():
            return process_request(self, request)

    BotocoreStubber.process_request = process_locked  # type: ignore[method-assign]
    serialize_long_polls(lock)
