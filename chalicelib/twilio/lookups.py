"""Finding what a call created at Twilio, for a call whose outcome was never recorded: the
messages, calls or Studio executions Twilio lists for the row's To since the call began (matched
by chalicelib.core.evidence), or the verification pending for it.

Each request a look-up makes is held for its own metered slot and may wait longer for its answer
than a call (the transport's hold and timeout for the next request)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from chalicelib.core.evidence import (
    CLOCK_SKEW_SECONDS,
    Candidate,
    Evidence,
    match_call,
    match_execution,
    match_message,
)
from chalicelib.core.evidence import found as evidence_found
from chalicelib.core.records import CallRequest, ParamValue
from chalicelib.errors import CallqueueError
from chalicelib.twilio.responses import rest_error_of
from chalicelib.twilio.transport import CapturingHttpClient

# A look-up reads Twilio's list newest first, this many a page, at most this many pages.
LOOKUP_PAGE_SIZE = 100
LOOKUP_MAX_PAGES = 5

Hold = Callable[[], None] | None


class LookupFailed(CallqueueError):
    """A look-up of what a call created got no usable answer (429, 5xx, none): try again."""


class _TooMany(CallqueueError):
    """Twilio lists more candidates than a look-up reads."""


class TwilioLookups:
    """Asks Twilio what one call created."""

    def __init__(self, client: Client, http: CapturingHttpClient) -> None:
        self._client = client
        self._http = http

    def look_up(
        self, request: CallRequest, since: float, *, hold: Hold, timeout: float | None
    ) -> Evidence:
        """Whether `request`, made at `since` (or later), took effect: what Twilio holds.
        `hold` runs before each request the look-up makes (its metered slot); `timeout` is each
        request's read timeout.

        Raises LookupFailed when Twilio could not answer (429, 5xx, no response): the caller
        retries with backoff. A look-up Twilio refuses for good (a 403 under test credentials)
        is evidence of nothing: "unknown", with Twilio's reason."""
        p = request.params
        matches = {"messages": match_message, "calls": match_call, "studio": match_execution}
        try:
            if request.api in matches:
                candidates = self._candidates(request.api, p, since, hold, timeout)
                return matches[request.api](p, since, candidates)
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
        hold: Hold,
        timeout: float | None,
    ) -> list[Candidate]:
        """Every resource of `kind` Twilio lists for the row's To created since the call began
        (less the clock skew), newest first, page by page until a page ends older than that."""
        oldest = since - CLOCK_SKEW_SECONDS
        page: Any = self._held(hold, timeout, self._first_page(kind, p, oldest))
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

    def _first_page(self, kind: str, p: dict[str, ParamValue], oldest: float) -> Callable[[], Any]:
        """The request for the newest page of `kind` listed for the row."""
        if kind == "studio":
            executions = self._client.studio.v2.flows(str(p["FlowSid"])).executions
            after = datetime.fromtimestamp(oldest - 1, tz=UTC)
            return lambda: executions.page(date_created_from=after, page_size=LOOKUP_PAGE_SIZE)
        resources = self._client.messages if kind == "messages" else self._client.calls
        filters: dict[str, Any] = {"to": p["To"], "page_size": LOOKUP_PAGE_SIZE}
        if isinstance(p.get("From"), str):
            filters["from_"] = p["From"]
        return lambda: resources.page(**filters)

    def _verification(
        self, p: dict[str, ParamValue], since: float, hold: Hold, timeout: float | None
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

    def _held(self, hold: Hold, timeout: float | None, request: Callable[[], Any]) -> Any:
        """One look-up request, held for its slot, with its own read timeout; a list page's
        refusal is raised as a TwilioRestException, so a 429 or 5xx on a list is retried like
        any other."""
        self._http.hold_next(hold)
        self._http.timeout_next(timeout)
        try:
            return request()
        except TwilioRestException:
            raise
        except TwilioException as error:
            rest = rest_error_of(error)
            if rest is None:
                raise
            raise rest from error


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
    to = item.contact_channel_address if kind == "studio" else item.to
    identity: dict[str, Any] = {
        "sid": item.sid,
        "created_at": _timestamp(item.date_created),
        "to": to,
        "fields": {"sid": item.sid, "status": item.status, "to": to},
    }
    if kind == "studio":
        return Candidate(from_=None, **identity)
    outbound = str(item.direction or "outbound").startswith("outbound")
    if kind == "calls":
        return Candidate(from_=getattr(item, "from_", None), outbound=outbound, **identity)
    return Candidate(
        from_=item.from_,
        body=item.body,
        num_media=int(item.num_media or 0),
        messaging_service_sid=item.messaging_service_sid,
        outbound=outbound,
        **identity,
    )
