"""Twilio adapter: credentials from Secrets Manager and one SDK call per row.

Every call goes through the official SDK's resource methods. The SDK raises TwilioRestException
on errors without the response headers, so the HTTP client below keeps the raw response of each
request: status, body and the Twilio-* headers are captured the same way for successes and errors.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from chalicelib.callbacks import status_callback_url
from chalicelib.config import CredentialKind
from chalicelib.records import CallRequest, ParamValue, TwilioResult

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

CAPTURED_HEADERS = ("Twilio-Request-Id", "Twilio-Concurrent-Requests", "Twilio-Request-Duration")

# Keys of the Secrets Manager secret (a JSON object), by credential kind. Live calls authenticate
# with an API key, as Twilio recommends; test credentials only exist as account SID + auth token.
SECRET_KEYS: dict[str, tuple[str, str, str]] = {
    "live": ("ACCOUNT_SID", "API_KEY_SID", "API_KEY_SECRET"),
    "test": ("TEST_ACCOUNT_SID", "TEST_ACCOUNT_SID", "TEST_AUTH_TOKEN"),
}


class CredentialsError(Exception):
    """The Twilio secret is missing a key; names the key, never a value."""


@dataclass(frozen=True)
class Credentials:
    account_sid: str
    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(account_sid={self.account_sid!r}, username=..., password=...)"


def load_credentials(
    secrets: SecretsManagerClient, secret_id: str, kind: CredentialKind
) -> Credentials:
    raw = secrets.get_secret_value(SecretId=secret_id)["SecretString"]
    values = json.loads(raw)
    names = SECRET_KEYS[kind]
    missing = [name for name in names if not values.get(name)]
    if missing:
        raise CredentialsError(
            f"secret {secret_id} has no {', '.join(missing)} ({kind} credentials)"
        )
    account_sid, username, password = (str(values[name]) for name in names)
    return Credentials(account_sid=account_sid, username=username, password=password)


class SlotMissed(Exception):
    """Raised by a call's hold before the request was sent: it came too late for its slot."""


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
    closes the connection."""

    def send(self, data: Any) -> None:
        _run_hold()
        super().send(data)  # type: ignore[misc]


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

    def hold_next(self, hold: Callable[[], None] | None) -> None:
        """Run `hold` on this thread just before its next request is sent (None: no hold)."""
        _HOLDS.hold = hold

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        self._local.response = None
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


def sdk_kwargs(params: dict[str, ParamValue], *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Twilio parameter names as the SDK's keyword arguments: `MediaUrl` -> `media_url`."""
    kwargs: dict[str, Any] = {}
    for name, value in params.items():
        if name in skip:
            continue
        snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()
        kwargs["from_" if snake == "from" else snake] = value
    return kwargs


class TwilioGateway:
    """Makes one Twilio call per CallRequest and reports what came back."""

    def __init__(
        self,
        client: Client,
        http: CapturingHttpClient,
        *,
        clock: Callable[[], float] = time.time,
        status_callback: str | None = None,
    ) -> None:
        """`status_callback`: the public URL of POST /twilio/status, asked of every message
        that does not name a StatusCallback of its own."""
        self._client = client
        self._http = http
        self._clock = clock
        self._status_callback = status_callback

    def warm(self) -> None:
        """Load the SDK's resources for every API now. It imports each on first use, which
        under a lock takes tens of milliseconds: the first calls of a container, each held for
        its own slot, would all wait on it and then go out together."""
        c = self._client
        _ = (c.messages, c.calls, c.lookups.v2.phone_numbers, c.verify.v2.services)
        _ = c.studio.v2.flows

    def call(self, request: CallRequest, hold: Callable[[], None] | None = None) -> TwilioResult:
        """`hold`: run once the SDK has built the request, just before it is sent (to wait for
        the call's slot), and again at its first write (so it must wait until a time, then
        check); it may raise SlotMissed, which is raised here, nothing sent."""
        sent_at = [self._clock()]

        def held() -> None:
            if hold is not None:
                hold()
            sent_at[0] = self._clock()  # the call starts when its request goes

        self._http.hold_next(held)
        try:
            self._dispatch(request)
        except TwilioRestException as error:
            return self._result(sent_at[0], error)
        except requests.RequestException as error:
            return TwilioResult(
                status=None,
                body=None,
                headers={},
                started_at=sent_at[0],
                finished_at=self._clock(),
                network_error=f"{type(error).__name__}: no response from Twilio",
                not_sent=_never_connected(error),
            )
        finally:
            self._http.hold_next(None)
        return self._result(sent_at[0], None)

    def find_message(self, params: dict[str, ParamValue], since: float) -> dict[str, Any] | None:
        """The message these parameters created, if Twilio has it: Twilio's message list,
        filtered by To, From and date sent, matched on the body. None when there is none, or
        when the parameters cannot identify one (no body to match).

        This is how a call whose response was lost is settled: by what Twilio holds, not by
        calling again."""
        body = params.get("Body")
        if not isinstance(body, str):
            return None
        filters: dict[str, Any] = {"to": params["To"], "page_size": 100, "limit": 1000}
        if isinstance(params.get("From"), str):
            filters["from_"] = params["From"]
        # DateSent filters by UTC day; a day before covers a call made just before midnight.
        filters["date_sent_after"] = datetime.fromtimestamp(since - 86400, tz=UTC)
        for message in self._client.messages.list(**filters):
            if message.body == body:
                return {"sid": message.sid, "status": message.status, "body": message.body}
        return None

    def _dispatch(self, request: CallRequest) -> None:
        p = request.params
        c = self._client
        if request.api == "messages":
            kwargs = sdk_kwargs(p)
            if self._status_callback and request.job_id and request.row is not None:
                kwargs.setdefault(
                    "status_callback",
                    status_callback_url(self._status_callback, request.job_id, request.row),
                )
            c.messages.create(**kwargs)
        elif request.api == "calls":
            c.calls.create(**sdk_kwargs(p))
        elif request.api == "lookup":
            number = str(p["PhoneNumber"])
            c.lookups.v2.phone_numbers(number).fetch(**sdk_kwargs(p, skip=("PhoneNumber",)))
        elif request.api == "verify":
            service = c.verify.v2.services(str(p["VerifyServiceSid"]))
            service.verifications.create(**sdk_kwargs(p, skip=("VerifyServiceSid",)))
        elif request.api == "studio":
            flow = c.studio.v2.flows(str(p["FlowSid"]))
            flow.executions.create(**sdk_kwargs(p, skip=("FlowSid",)))
        else:  # pragma: no cover - validation admits only the five apis
            raise ValueError(f"unknown api {request.api!r}")

    def _result(self, started: float, error: TwilioRestException | None) -> TwilioResult:
        finished = self._clock()
        response = self._http.captured
        headers: dict[str, str] = {}
        body: dict[str, Any] | None = None
        if response is not None:
            raw_headers = response.headers or {}
            headers = {h: raw_headers[h] for h in CAPTURED_HEADERS if h in raw_headers}
            body = _json_object(response.text)
        if error is None:
            status = response.status_code if response is not None else 200
            return TwilioResult(status, body, headers, started, finished)
        return TwilioResult(
            status=error.status,
            body=body,
            headers=headers,
            started_at=started,
            finished_at=finished,
            error_code=error.code,
            error_message=error.msg,
            more_info=(body or {}).get("more_info"),
        )


def _never_connected(error: requests.RequestException) -> bool:
    """Whether the request certainly never reached Twilio: the connection was refused or timed
    out before it was made. A connection dropped after the request was sent may have been
    processed, so it does not count."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(error, requests.ConnectionError) and isinstance(
        reason, urllib3.exceptions.NewConnectionError
    )


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def make_gateway(
    credentials: Credentials, http: CapturingHttpClient, *, status_callback: str | None = None
) -> TwilioGateway:
    client = Client(
        username=credentials.username,
        password=credentials.password,
        account_sid=credentials.account_sid,
        http_client=http,
    )
    gateway = TwilioGateway(client, http, status_callback=status_callback)
    gateway.warm()
    return gateway
