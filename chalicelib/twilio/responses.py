"""What a Twilio request came back with, in callqueue's terms: a response of any status (the
raw response the transport kept, and the SDK's TwilioRestException for an error) as a
TwilioResult; no response at all, and whether the request certainly never reached Twilio; and
a list page's refusal, which the SDK raises bare, as the TwilioRestException it describes."""

from __future__ import annotations

import json
from typing import Any

import requests
import urllib3
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.response import Response

from chalicelib.core.records import TwilioResult

CAPTURED_HEADERS = ("Twilio-Request-Id", "Twilio-Concurrent-Requests", "Twilio-Request-Duration")


def result_of(
    response: Response | None,
    error: TwilioRestException | None,
    started: float,
    finished: float,
) -> TwilioResult:
    """The result of a request Twilio answered: `response` is its raw response (None if the
    transport kept none), `error` what the SDK raised for it, if it raised."""
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


def no_response(error: requests.RequestException, started: float, finished: float) -> TwilioResult:
    """The result of a request that got no answer (the connection failed, or timed out)."""
    return TwilioResult(
        status=None,
        body=None,
        headers={},
        started_at=started,
        finished_at=finished,
        network_error=f"{type(error).__name__}: no response from Twilio",
        not_sent=_never_connected(error),
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


def rest_error_of(error: TwilioException) -> TwilioRestException | None:
    """The TwilioRestException a list page's refusal describes, as the SDK raises for a fetch.

    A list page that is not a 200 is raised by the SDK as a bare TwilioException carrying the
    response (twilio.base.page.Page.process_response); None if `error` carries none."""
    response = error.args[1] if len(error.args) > 1 else None
    if not isinstance(response, Response):
        return None
    body = _json_object(response.text) or {}
    code = body.get("code")
    return TwilioRestException(
        response.status_code,
        "",
        msg=str(body.get("message") or f"HTTP {response.status_code}"),
        code=code if isinstance(code, int) else None,
    )
