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
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from chalicelib.config import CredentialKind
from chalicelib.core.evidence import (
    CLOCK_SKEW_SECONDS,
    Candidate,
    Evidence,
    match_call,
    match_execution,
    match_message,
)
from chalicelib.core.evidence import found as evidence_found
from chalicelib.core.records import CallRequest, ParamValue, TwilioResult
from chalicelib.errors import CallqueueError
from chalicelib.twilio.callbacks import status_callback_url

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

CAPTURED_HEADERS = ("Twilio-Request-Id", "Twilio-Concurrent-Requests", "Twilio-Request-Duration")

# Keys of the Secrets Manager secret (a JSON object), by credential kind. Live calls authenticate
# with an API key, as Twilio recommends; test credentials only exist as account SID + auth token.
SECRET_KEYS: dict[str, tuple[str, str, str]] = {
    "live": ("ACCOUNT_SID", "API_KEY_SID", "API_KEY_SECRET"),
    "test": ("TEST_ACCOUNT_SID", "TEST_ACCOUNT_SID", "TEST_AUTH_TOKEN"),
}


class CredentialsError(CallqueueError):
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


class SlotMissed(CallqueueError):
    """Raised by a call's hold before the request was sent: it came too late for its slot."""


class NumberSuppressed(CallqueueError):
    """Raised by a call's hold before the request was sent: its number was suppressed since
    the row was checked (a response a moment ago said STOP, landline or invalid)."""


class LookupFailed(CallqueueError):
    """A look-up of what a call created got no usable answer (429, 5xx, none): try again."""


class _TooMany(CallqueueError):
    """Twilio lists more candidates than a look-up reads."""


# A look-up reads Twilio's list newest first, this many a page, at most this many pages.
LOOKUP_PAGE_SIZE = 100
LOOKUP_MAX_PAGES = 5


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

    def look_up(
        self,
        request: CallRequest,
        since: float,
        *,
        hold: Callable[[], None] | None = None,
        timeout: float | None = None,
    ) -> Evidence:
        """Whether `request`, made at `since` (or later), took effect: what Twilio holds.
        `hold` runs before each request the look-up makes (its metered slot); `timeout` is each
        request's read timeout (a look-up may wait longer than a call).

        Raises LookupFailed when Twilio could not answer (429, 5xx, no response): the caller
        retries with backoff. A look-up Twilio refuses for good (a 403 under test credentials)
        is evidence of nothing: "unknown", with Twilio's reason."""
        p = request.params
        try:
            if request.api == "messages":
                return match_message(
                    p, since, self._candidates("messages", p, since, hold, timeout)
                )
            if request.api == "calls":
                return match_call(p, since, self._candidates("calls", p, since, hold, timeout))
            if request.api == "studio":
                return match_execution(
                    p, since, self._candidates("studio", p, since, hold, timeout)
                )
            if request.api == "verify":
                return self._verification(p, since, hold, timeout)
        except TwilioRestException as error:
            if error.status == 429 or error.status >= 500:
                raise LookupFailed(f"the look-up got HTTP {error.status}") from error
            return Evidence(
                "unknown", reason=f"Twilio refused the look-up: {error.status} {error.code}"
            )
        except requests.RequestException as error:
            raise LookupFailed(f"the look-up got no answer ({type(error).__name__})") from error
        except _TooMany as error:
            return Evidence("unknown", reason=str(error))
        finally:
            self._http.hold_next(None)
            self._http.timeout_next(None)
        # A Lookup changes nothing at Twilio: asking again is always safe.
        return Evidence("absent", reason="a Lookup has no effect to find")

    def _candidates(
        self,
        kind: str,
        p: dict[str, ParamValue],
        since: float,
        hold: Callable[[], None] | None,
        timeout: float | None,
    ) -> list[Candidate]:
        """Every resource of `kind` Twilio lists for the row's To created since the call began
        (less the clock skew), newest first, page by page until a page ends older than that."""
        oldest = since - CLOCK_SKEW_SECONDS
        c = self._client
        if kind == "messages":
            filters: dict[str, Any] = {"to": p["To"], "page_size": LOOKUP_PAGE_SIZE}
            if isinstance(p.get("From"), str):
                filters["from_"] = p["From"]
            page: Any = self._held(hold, timeout, lambda: c.messages.page(**filters))
        elif kind == "calls":
            filters = {"to": p["To"], "page_size": LOOKUP_PAGE_SIZE}
            if isinstance(p.get("From"), str):
                filters["from_"] = p["From"]
            page = self._held(hold, timeout, lambda: c.calls.page(**filters))
        else:
            executions = c.studio.v2.flows(str(p["FlowSid"])).executions
            after = datetime.fromtimestamp(oldest - 1, tz=UTC)
            page = self._held(
                hold,
                timeout,
                lambda: executions.page(date_created_from=after, page_size=LOOKUP_PAGE_SIZE),
            )
        found: list[Candidate] = []
        for _ in range(LOOKUP_MAX_PAGES):
            items = [_candidate(kind, item) for item in page]
            found.extend(items)
            if not items or min(i.created_at for i in items) < oldest:
                return found
            following = page
            page = self._held(hold, timeout, following.next_page)
            if page is None:
                return found
        raise _TooMany(
            f"more than {LOOKUP_MAX_PAGES * LOOKUP_PAGE_SIZE} resources for {p.get('To')} since "
            "the call started: too many to tell which is this row's"
        )

    def _verification(
        self,
        p: dict[str, ParamValue],
        since: float,
        hold: Callable[[], None] | None,
        timeout: float | None,
    ) -> Evidence:
        """A verification is fetched by its To (Verify accepts it in place of the SID); it was
        this call's if a code was sent since the call began."""
        verifications = self._client.verify.v2.services(str(p["VerifyServiceSid"])).verifications
        try:
            found = self._held(hold, timeout, verifications(str(p["To"])).fetch)
        except TwilioRestException as error:
            if error.status == 404:
                return Evidence("absent", reason=f"no verification pending for {p['To']}")
            raise
        attempts = found.send_code_attempts or []
        oldest = since - CLOCK_SKEW_SECONDS
        if any(_timestamp(a.get("time")) >= oldest for a in attempts if isinstance(a, dict)):
            return evidence_found(
                {"sid": found.sid, "status": found.status, "to": found.to}, "verify fetch"
            )
        return Evidence("absent", reason=f"no code sent to {p['To']} since the call started")

    def _held(
        self, hold: Callable[[], None] | None, timeout: float | None, request: Callable[[], Any]
    ) -> Any:
        """One look-up request, held for its slot, with its own read timeout.

        A list page that is not a 200 is raised by the SDK as a bare TwilioException carrying
        the response (twilio.base.page.Page.process_response), not a TwilioRestException: it
        is turned into one here, so a 429 or 5xx on a list is retried like any other."""
        self._http.hold_next(hold)
        self._http.timeout_next(timeout)
        try:
            return request()
        except TwilioRestException:
            raise
        except TwilioException as error:
            response = error.args[1] if len(error.args) > 1 else None
            if not isinstance(response, Response):
                raise
            raise _rest_error(response) from error

    def _dispatch(self, request: CallRequest) -> None:
        p = request.params
        c = self._client
        if request.api == "messages":
            kwargs = sdk_kwargs(p)
            if self._status_callback and request.job_id and request.row is not None:
                own = kwargs.get("status_callback")
                # The status route is callqueue's own: a row may not point it at another row
                # (the callback would be refused anyway: CallLedger.bind_callback).
                if (
                    own is None
                    or str(own).split("?", 1)[0] == self._status_callback.split("?", 1)[0]
                ):
                    kwargs["status_callback"] = status_callback_url(
                        self._status_callback, request.job_id, request.row
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


def _timestamp(value: Any) -> float:
    """Seconds since the epoch of a time the SDK gives as a datetime or an ISO 8601 string."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return 0.0
    return 0.0


def _candidate(kind: str, item: Any) -> Candidate:
    """A listed message, call or execution as the fields that identify what created it."""
    created = _timestamp(item.date_created)
    if kind == "messages":
        return Candidate(
            sid=item.sid,
            created_at=created,
            to=item.to,
            from_=item.from_,
            body=item.body,
            num_media=int(item.num_media or 0),
            messaging_service_sid=item.messaging_service_sid,
            outbound=str(item.direction or "outbound").startswith("outbound"),
            fields={"sid": item.sid, "status": item.status, "to": item.to},
        )
    if kind == "calls":
        return Candidate(
            sid=item.sid,
            created_at=created,
            to=item.to,
            from_=getattr(item, "from_", None),
            outbound=str(item.direction or "outbound").startswith("outbound"),
            fields={"sid": item.sid, "status": item.status, "to": item.to},
        )
    return Candidate(
        sid=item.sid,
        created_at=created,
        to=item.contact_channel_address,
        from_=None,
        fields={"sid": item.sid, "status": item.status, "to": item.contact_channel_address},
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


def _rest_error(response: Response) -> TwilioRestException:
    """The TwilioRestException Twilio's error body describes, as the SDK raises for a fetch."""
    try:
        body = json.loads(response.text)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = body.get("code")
    return TwilioRestException(
        response.status_code,
        "",
        msg=str(body.get("message") or f"HTTP {response.status_code}"),
        code=code if isinstance(code, int) else None,
    )
