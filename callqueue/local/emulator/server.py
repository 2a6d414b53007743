"""`TwilioEmulator`: its settings and state, starting and stopping its server thread, and what it
has seen (requests, callbacks); `serve_forever_cli` runs one with the default fake credentials."""

from __future__ import annotations

import contextlib
import random
import signal
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import IO

from callqueue.local.emulator.account import _Account
from callqueue.local.emulator.answer import _Answering
from callqueue.local.emulator.callbacks import _CallbackSender
from callqueue.local.emulator.core import (
    _ACCOUNT_SID,
    DEFAULT_ACCOUNT_SID,
    DEFAULT_API_KEY_SECRET,
    DEFAULT_API_KEY_SID,
    DEFAULT_AUTH_TOKEN,
    Json,
)
from callqueue.local.emulator.inbound import send_reply
from callqueue.local.emulator.transport import _Server
from callqueue.local.faults import READ_KINDS, FaultSpec

DEFAULT_SLOW_SECONDS = 12.0

_NO_API_KEYS: Mapping[str, str] = MappingProxyType({})


def _check_settings(
    account_sid: str,
    concurrency_limit: int | None,
    lookup_faults: FaultSpec | None,
    slow_seconds: float,
) -> None:
    if not _ACCOUNT_SID.fullmatch(account_sid):
        raise ValueError(f"account SID must be AC followed by 32 hex digits: {account_sid!r}")
    if concurrency_limit is not None and concurrency_limit < 1:
        raise ValueError(f"concurrency limit must be at least 1, got {concurrency_limit}")
    if lookup_faults is not None and not lookup_faults.kinds() <= READ_KINDS:
        unfit = ", ".join(sorted(k.value for k in lookup_faults.kinds() - READ_KINDS))
        raise ValueError(f"look-ups change nothing, so these faults cannot apply: {unfit}")
    if slow_seconds < 0:
        raise ValueError(f"slow_seconds must not be negative, got {slow_seconds}")


class TwilioEmulator(_Answering):
    """Serves the emulated Twilio API on a background thread; see the package docstring."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        account_sid: str,
        auth_token: str,
        api_keys: Mapping[str, str] = _NO_API_KEYS,
        latency: float | Callable[[], float] = 0.0,
        concurrency_limit: int | None = None,
        faults: FaultSpec | None = None,
        requests_log: Path | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        callback_delay: float = 0.05,
        lookup_faults: FaultSpec | None = None,
        slow_seconds: float = DEFAULT_SLOW_SECONDS,
        trial_account: bool = False,
        test_credentials: bool = False,
        inbound_url: str | None = None,
    ) -> None:
        """`callback_delay`: seconds between a message's (or call's) status changes, and so
        between its status callbacks. `faults` apply to the operations, `lookup_faults` (429,
        500, reset and slow only) to the lists and fetches. `slow_seconds`: how late a ``slow``
        fault answers. `trial_account`: bodies get Twilio's trial prefix. `test_credentials`: the
        account SID and auth token are the account's test credentials (see the package
        docstring). `inbound_url`: the account's incoming-message webhook (`reply`)."""
        _check_settings(account_sid, concurrency_limit, lookup_faults, slow_seconds)
        self._host = host
        self._port = port
        self._account = _Account(
            account_sid, clock, step=callback_delay, trial_account=trial_account
        )
        self._lookup_faults = lookup_faults
        self._slow_seconds = slow_seconds
        self._test_credentials = test_credentials
        self._secrets: dict[str, str] = {**api_keys, account_sid: auth_token}
        self._latency = latency
        self._concurrency_limit = concurrency_limit
        self._faults = faults
        self._requests_log = requests_log
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._in_flight = 0
        self._requests: list[Json] = []
        self._log_file: IO[str] | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._callbacks = _CallbackSender(auth_token, clock)
        self._reply = (
            partial(send_reply, inbound_url, account_sid, auth_token) if inbound_url else None
        )

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return f"http://{self._host}:{self._server.server_address[1]}"

    @property
    def callbacks(self) -> list[Json]:
        """A snapshot of every status callback posted so far, in order."""
        return self._callbacks.sent

    def reply(self, from_number: str, to_number: str, body: str) -> int | None:
        """A recipient's reply to the account's number, posted now to the incoming-message
        webhook as Twilio signs it; the HTTP status it got (None: unreachable)."""
        if self._reply is None:
            raise RuntimeError("the emulator has no incoming-message webhook (inbound_url)")
        return self._reply(from_number, to_number, body)

    @property
    def requests(self) -> list[Json]:
        """A snapshot of every request logged so far, in the order they finished."""
        with self._lock:
            return list(self._requests)

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        if self._requests_log is not None:
            self._log_file = self._requests_log.open("a", encoding="utf-8")
        self._server = _Server((self._host, self._port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="twilio-emulator",
            daemon=True,
        )
        self._thread.start()
        self._callbacks.start()

    @property
    def open_connections(self) -> int:
        """Connections accepted and not yet closed."""
        server = self._server
        if server is None:
            return 0
        with server._connections_lock:
            return len(server._connections)

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._callbacks.stop()
        server.shutdown()
        server.server_close()
        server.close_connections()
        thread.join()
        self._server = self._thread = None
        with self._lock:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None

    def __enter__(self) -> TwilioEmulator:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_forever_cli(
    host: str,
    port: int,
    requests_log: Path | None,
    faults: FaultSpec | None,
    *,
    latency: float = 0.0,
    concurrency_limit: int | None = None,
    seed: int | None = None,
) -> None:
    """Run an emulator with the default fake credentials until interrupted (Ctrl-C)."""
    # A process started in the background by a shell without job control inherits SIGINT
    # ignored, and Python then installs no KeyboardInterrupt for it: Ctrl-C must still stop this.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    emulator = TwilioEmulator(
        host=host,
        port=port,
        account_sid=DEFAULT_ACCOUNT_SID,
        auth_token=DEFAULT_AUTH_TOKEN,
        api_keys={DEFAULT_API_KEY_SID: DEFAULT_API_KEY_SECRET},
        latency=latency,
        concurrency_limit=concurrency_limit,
        faults=faults,
        requests_log=requests_log,
        rng=random.Random(seed),
    )
    with emulator:
        print(f"Twilio emulator listening on {emulator.base_url}", flush=True)
        print(f"  account SID {DEFAULT_ACCOUNT_SID}, auth token {DEFAULT_AUTH_TOKEN}", flush=True)
        print(f"  API key {DEFAULT_API_KEY_SID}, secret {DEFAULT_API_KEY_SECRET}", flush=True)
        if faults is not None and faults.total:
            print(f"  faults {faults}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
