"""Twilio's status callbacks through the callback function's Lambda function URL, past API
Gateway: the same checks and writes as the REST route (chalicelib.api.status), at no request
charge (docs/decisions/final-status-callbacks.md).

The function URL has AuthType NONE (.chalice/infrastructure.yaml): anyone may call it, so
Twilio's signature is its only authentication, as it is of the REST route. The signature is
checked over the URL the request came to, exactly as Twilio called it:
`https://{domainName}{rawPath}?{rawQueryString}`. The REST route rebuilds its URL from the
configured public URL and a parsed query; a function URL's event keeps the query as sent, so
nothing is rebuilt here. The scheme is the `x-forwarded-proto` Lambda sets (always https on
AWS; the local runtime's function URL is plain http).

A function URL's event is API Gateway's payload format 2.0: headers in lower case, the body a
string, base64 when `isBase64Encoded`. An event that is not a form POST, or not the shape Lambda
gives, is answered 4xx naming what is wrong, never with an exception (Lambda would answer 502
and log a traceback).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from chalicelib.api.status import StatusCallbacks, form_of
from chalicelib.errors import CallqueueError
from chalicelib.twilio.callbacks import CallbackRejected, MalformedCallback

log = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded"
SCHEMES = ("https", "http")


class BadEvent(CallqueueError):
    """A request the callback function does not take; `status` is its HTTP answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _bad_request(message: str) -> BadEvent:
    return BadEvent(400, "BadRequestError", message)


@dataclass(frozen=True)
class CallbackRequest:
    """What a status callback is checked on: the URL it was sent to, its query, its form and
    its signature."""

    url: str
    query: dict[str, str]
    form: dict[str, str]
    signature: str | None

    @classmethod
    def of_event(cls, event: Any) -> CallbackRequest:
        """The callback in a function URL's event. BadEvent: not a form POST, or not an event."""
        if not isinstance(event, Mapping):
            raise _bad_request("the event is not a function URL request")
        context, headers = event.get("requestContext"), _headers(event.get("headers"))
        http = context.get("http") if isinstance(context, Mapping) else None
        method = http.get("method") if isinstance(http, Mapping) else None
        domain = context.get("domainName") if isinstance(context, Mapping) else None
        path, raw_query = event.get("rawPath"), event.get("rawQueryString", "")
        if not all(isinstance(v, str) for v in (method, domain, path, raw_query)):
            raise _bad_request("the event lacks requestContext.http.method, domainName or rawPath")
        if method != "POST":
            raise BadEvent(405, "MethodNotAllowedError", f"{method} is not allowed; use POST")
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != FORM:
            raise BadEvent(415, "UnsupportedMediaType", f"the body must be {FORM}")
        scheme = headers.get("x-forwarded-proto", "https")
        if scheme not in SCHEMES:
            raise _bad_request(f"unknown x-forwarded-proto {scheme!r}")
        url = f"{scheme}://{domain}{path}" + (f"?{raw_query}" if raw_query else "")
        return cls(url, _query(raw_query), form_of(_body(event)), headers.get("x-twilio-signature"))


def _headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _bad_request("the event's headers are not names and values")
    # Lambda gives them in lower case; a name in another case is the same header.
    return {k.lower(): v for k, v in value.items()}


def _query(raw: str) -> dict[str, str]:
    pairs = parse_qsl(raw, keep_blank_values=True)
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        # The URLs the sender gives name each parameter once; which value would count is moot.
        raise _bad_request("a query parameter is named more than once")
    return dict(pairs)


def _body(event: Mapping[str, Any]) -> bytes:
    body = event.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise _bad_request("the event's body is not a string")
    if event.get("isBase64Encoded") is True:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise _bad_request("the body is marked base64 but is not") from None
    return body.encode("utf-8", "surrogatepass")


def answer(status: int, code: str = "", message: str = "") -> dict[str, Any]:
    """A function URL's response; an error's body is shaped as Chalice's."""
    if status < 400:
        return {"statusCode": status, "headers": {}, "body": ""}
    headers = {"Content-Type": "application/json"}
    if status == 405:
        headers["Allow"] = "POST"
    body = json.dumps({"Code": code, "Message": message})
    return {"statusCode": status, "headers": headers, "body": body}


class FunctionUrlCallbacks:
    """The callback function: a function URL's event in, its response out."""

    def __init__(self, callbacks: StatusCallbacks) -> None:
        self._callbacks = callbacks

    def respond(self, event: Any) -> dict[str, Any]:
        """204 (checked, and written when final), 400, 403, 405 or 415, as the REST route."""
        try:
            request = CallbackRequest.of_event(event)
            self._callbacks.accept(request.url, request.query, request.form, request.signature)
        except BadEvent as error:
            return answer(error.status, error.code, str(error))
        except CallbackRejected as error:
            log.warning("status callback refused: %s", error)
            return answer(403, "ForbiddenError", str(error))
        except MalformedCallback as error:
            return answer(400, "BadRequestError", str(error))
        return answer(204)
