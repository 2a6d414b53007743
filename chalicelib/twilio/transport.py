"""The Twilio SDK's HTTP transport: a request held for its slot just before it is sent, sent to
Twilio or to a local emulator, and its raw response kept.

The SDK raises TwilioRestException on errors without the response headers, so the client keeps
the raw response of each request: status, body and the Twilio-* headers are captured the same
way for successes and errors (chalicelib.twilio.responses reads them).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response

# Each thread's hold for its next request (CapturingHttpClient.hold_next).
_HOLDS = threading.local()


def _run_hold() -> None:
    """Run the calling thread's hold, if any, once: a redirect or a lookup after it is not held."""
    hold: Callable[[], None] | None = getattr(_HOLDS, "hold", None)
    if hold is not None:
        _HOLDS.hold = None
        hold()


class _HeldPool:
    """A connection pool that runs the calling thread's hold, if any, on an open connection
    taken from the pool (connected first if it is new: a TLS handshake is not between the slot
    and Twilio) and then given back for the request, which the pool makes at once on it (it
    hands out the connection it got last). A hold that raises (SlotMissed) leaves the
    connection open in the pool for the next call: a missed slot costs no handshake.

    The connection runs the hold again at the request's first write (_HeldSend): past the slot
    by then, it only checks that the call is still within it, so the time urllib3 takes to
    write the request is not between the last check and Twilio either."""

    def urlopen(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        pool: Any = self
        hold: Callable[[], None] | None = getattr(_HOLDS, "hold", None)
        if hold is not None:
            conn = pool._get_conn()
            try:
                if conn.is_closed:
                    try:
                        conn.connect()
                    except Exception:  # noqa: BLE001 - the request's own connect reports it
                        conn.close()  # (wrapped as requests wraps it), after the hold
                hold()
            finally:
                pool._put_conn(conn)
        return super().urlopen(method, url, *args, **kwargs)  # type: ignore[misc]


class _HeldSend:
    """A connection that runs the calling thread's hold, if any, once more, at the request's
    first write (after that, the hold is gone: a redirect or a lookup is not held). Should the
    call have fallen out of its slot since the pool's hold, nothing is written, and urllib3
    closes the connection. The hold is the last step before the bytes go (http.client's own
    checks come first), and the thread's `written` hook is told when that first write has ended.
    urllib3 writes a request's headers first and its body after: the first write is when the
    request reaches Twilio (its arrival, as the emulator stamps it), so that is what the hold and
    the hook bound; the body's own write is not held."""

    def send(self, data: Any) -> None:
        conn: Any = self
        written: Callable[[], None] | None = getattr(_HOLDS, "written", None)
        _HOLDS.written = None
        if getattr(_HOLDS, "hold", None) is None:
            super().send(data)  # type: ignore[misc]
            return
        if conn.sock is None or not isinstance(data, bytes | bytearray):
            _run_hold()
            super().send(data)  # type: ignore[misc]
        else:
            # What http.client.HTTPConnection.send does for bytes on an open connection, with
            # the hold between its audit event and the write.
            sys.audit("http.client.send", conn, data)
            _run_hold()
            conn.sock.sendall(data)
        if written is not None:
            written()


class _HeldHTTPConnection(_HeldSend, urllib3.connection.HTTPConnection):
    pass


class _HeldHTTPSConnection(_HeldSend, urllib3.connection.HTTPSConnection):
    pass


class _HeldHTTPPool(_HeldPool, urllib3.HTTPConnectionPool):
    ConnectionCls = _HeldHTTPConnection


class _HeldHTTPSPool(_HeldPool, urllib3.HTTPSConnectionPool):
    ConnectionCls = _HeldHTTPSConnection


class HeldAdapter(HTTPAdapter):
    """requests' adapter, holding each request for its thread's hold: in the connection pool,
    or, through a proxy (whose pools are urllib3's own), just before the adapter sends it."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HeldHTTPPool, "https": _HeldHTTPSPool}

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        if select_proxy(request.url or "", kwargs.get("proxies")):
            _run_hold()
        return super().send(request, *args, **kwargs)


class CapturingHttpClient(TwilioHttpClient):  # type: ignore[misc]  # the SDK is untyped
    """The SDK's HTTP client, keeping each thread's last raw response and optionally sending every
    request to another base URL (a local Twilio emulator) instead of Twilio's hosts. A thread
    may ask for its next request to wait for something (its slot) just before it is sent."""

    session: requests.Session

    def __init__(
        self, base_url: str | None = None, timeout: float | None = None, *, pool_size: int = 64
    ) -> None:
        super().__init__(timeout=timeout)
        # Connections that hold each request for its slot. The SDK's own pool has 4 more
        # connections than CPUs: a sender's threads would each open (TLS and all) and drop one
        # for most calls. No retries, as with the SDK's own adapter.
        for scheme in ("https://", "http://"):
            self.session.mount(scheme, HeldAdapter(pool_maxsize=pool_size))
        self._base = urlsplit(base_url) if base_url else None
        self._local = threading.local()
        if self._base is not None:
            # A local emulator: no proxy from the environment may capture these requests.
            self.session.trust_env = False

    def hold_next(
        self, hold: Callable[[], None] | None, written: Callable[[], None] | None = None
    ) -> None:
        """Run `hold` on this thread just before its next request is sent (None: no hold), and
        `written` once its first write has ended."""
        _HOLDS.hold = hold
        _HOLDS.written = written

    def timeout_next(self, timeout: float | None) -> None:
        """This thread's requests wait `timeout` seconds for an answer (None: the client's)."""
        self._local.timeout = timeout

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        self._local.response = None
        override: float | None = getattr(self._local, "timeout", None)
        if override is not None and kwargs.get("timeout") is None:
            kwargs["timeout"] = override
        if self._base is not None:
            parts = urlsplit(url)
            url = urlunsplit((self._base.scheme, self._base.netloc, parts.path, parts.query, ""))
        response: Response = super().request(method, url, *args, **kwargs)
        self._local.response = response
        return response

    @property
    def captured(self) -> Response | None:
        response: Response | None = getattr(self._local, "response", None)
        return response
