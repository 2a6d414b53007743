"""The Twilio adapter: one SDK call per row, and the look-up of what a call created.

Every call goes through the official SDK's resource methods, over the transport that holds each
request for its slot and keeps its raw response (chalicelib.twilio.transport); what came back is
read by chalicelib.twilio.responses, the look-ups are chalicelib.twilio.lookups'. This module is
the adapter's face: the rest of callqueue imports the gateway and what it raises from here.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from chalicelib.core.evidence import Evidence
from chalicelib.core.records import CallRequest, ParamValue, TwilioResult
from chalicelib.errors import CallqueueError
from chalicelib.twilio.callbacks import CALL_EVENTS, status_callback_url
from chalicelib.twilio.credentials import Credentials
from chalicelib.twilio.lookups import LookupFailed, TwilioLookups
from chalicelib.twilio.responses import no_response, result_of
from chalicelib.twilio.transport import CapturingHttpClient

# The adapter's face: the gateway, what builds it, and what a call or a look-up raises.
__all__ = [
    "CapturingHttpClient",
    "LookupFailed",
    "NumberSuppressed",
    "SlotMissed",
    "TwilioGateway",
    "make_gateway",
]


class SlotMissed(CallqueueError):
    """Raised by a call's hold before the request was sent: it came too late for its slot."""


class NumberSuppressed(CallqueueError):
    """Raised by a call's hold before the request was sent: its number was suppressed since
    the row was checked (a response a moment ago said STOP, landline or invalid)."""


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
        status_callback: Callable[[], str | None] | None = None,
    ) -> None:
        """`status_callback` gives the public URL of POST /twilio/status (None: none), asked of
        every message and call that does not name a StatusCallback of its own; asked at each
        one, so a URL found later is used from then on."""
        self._client = client
        self._http = http
        self._clock = clock
        self._status_url = status_callback or _no_url
        self._lookups = TwilioLookups(client, http)

    def warm(self) -> None:
        """Load the SDK's resources for every API now. It imports each on first use, which
        under a lock takes tens of milliseconds: the first calls of a container, each held for
        its own slot, would all wait on it and then go out together."""
        c = self._client
        _ = (c.messages, c.calls, c.lookups.v2.phone_numbers, c.verify.v2.services)
        _ = c.studio.v2.flows

    def call(
        self,
        request: CallRequest,
        hold: Callable[[], None] | None = None,
        written: Callable[[float], None] | None = None,
    ) -> TwilioResult:
        """`hold`: run once the SDK has built the request, just before it is sent (to wait for
        the call's slot), and again at its first write (so it must wait until a time, then
        check); it may raise SlotMissed, which is raised here, nothing sent. `written`: told
        the time the request's first write ended (not through a proxy)."""
        sent_at = [self._clock()]

        def held() -> None:
            if hold is not None:
                hold()
            sent_at[0] = self._clock()  # the call starts when its request goes

        def after() -> None:
            if written is not None:
                written(self._clock())

        self._http.hold_next(held, after)
        try:
            self._dispatch(request)
        except TwilioRestException as error:
            return result_of(self._http.captured, error, sent_at[0], self._clock())
        except requests.RequestException as error:
            return no_response(error, sent_at[0], self._clock())
        finally:
            self._http.hold_next(None)
        return result_of(self._http.captured, None, sent_at[0], self._clock())

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
        return self._lookups.look_up(request, since, hold=hold, timeout=timeout)

    def _dispatch(self, request: CallRequest) -> None:
        p = request.params
        c = self._client
        if request.api == "messages":
            c.messages.create(**self._message_kwargs(request))
        elif request.api == "calls":
            c.calls.create(**self._call_kwargs(request))
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

    def _message_kwargs(self, request: CallRequest) -> dict[str, Any]:
        """A message's arguments, asking for the row's own status callback."""
        kwargs = sdk_kwargs(request.params)
        url = self._callback_for(request, kwargs.get("status_callback"))
        if url is not None:
            kwargs["status_callback"] = url
        return kwargs

    def _call_kwargs(self, request: CallRequest) -> dict[str, Any]:
        """A call's arguments, asking for the row's own status callback of every progress event
        (POST: the status route takes nothing else)."""
        kwargs = sdk_kwargs(request.params)
        url = self._callback_for(request, kwargs.get("status_callback"))
        if url is not None:
            kwargs["status_callback"] = url
            kwargs["status_callback_method"] = "POST"
            kwargs["status_callback_event"] = list(CALL_EVENTS)
        return kwargs

    def _callback_for(self, request: CallRequest, own: object) -> str | None:
        """The status callback URL the row's request asks for, or None to leave the row's own
        (or none) as it is."""
        if not request.job_id or request.row is None:
            return None
        base = self._status_url()
        if not base:
            return None
        # The status route is callqueue's own: a row may not point it at another row (the
        # callback would be refused anyway: CallLedger.bind_callback); another URL is the row's.
        if own is not None and str(own).split("?", 1)[0] != base.split("?", 1)[0]:
            return None
        return status_callback_url(base, request.job_id, request.row)


def _no_url() -> str | None:
    return None


def make_gateway(
    credentials: Credentials,
    http: CapturingHttpClient,
    *,
    status_callback: Callable[[], str | None] | None = None,
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
