"""The status callback route: Twilio's word on what happened to a message or a call after it
was accepted.

Each signed callback with a final status updates its row's delivery status in the results
table, once the call ledger has bound it to the row's message or call (CallLedger.bind_callback,
by MessageSid or CallSid): the signature proves Twilio sent the callback, not that the row's
request made the message, since a row may set its own StatusCallback to another job's or row's
URL. A callback for a message or call the row did not create is refused (403). A call's callback
also records its CallDuration and AnsweredBy (Twilio sends both with the final status).

A non-final status (`queued`, `sent`, `ringing`, ...) is checked and bound like any other, then
answered without a write (docs/decisions/final-status-callbacks.md): a job's status, outcomes.csv,
the console and retries read only final statuses once they come, and before then the row's
outcome `sent` already says the message is on its way.

A callback that carries an error code (30003 unreachable, 30005 unknown destination, 30006
landline, 30007 filtered, ...) becomes a `TwilioError` event on the error bus, like an error in an
API response, so the same rules act on it (suppression, systemic pause). The event goes out only
when the status was recorded, so a repeated callback is not counted twice.

Twilio signs callbacks with the account's auth token (chalicelib.twilio.credentials).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from chalice.app import BadRequestError, ForbiddenError, Request, Response

from chalicelib.api.delivery_metrics import count_delivery
from chalicelib.api.request_bodies import current, raw_body_of
from chalicelib.aws.event_bus import TWILIO_ERROR, EventPublisher
from chalicelib.aws.results_table import ResultsTable
from chalicelib.core.delivery import final_status
from chalicelib.observability import Metrics
from chalicelib.sending.ledger import CallLedger
from chalicelib.sending.suppression import SUPPRESSING_CODES
from chalicelib.twilio.callbacks import (
    CallbackRejected,
    DeliveryStatus,
    MalformedCallback,
    callback_url_of,
    check_signature,
)

log = logging.getLogger(__name__)


def delivery_event(status: DeliveryStatus) -> tuple[str, dict[str, Any]]:
    """The error-bus event of a callback with an error code, shaped as the router's events."""
    kind = "Call" if status.api == "calls" else "Message"
    detail: dict[str, Any] = {
        "job_id": status.job_id,
        "row": status.row,
        "api": status.api,
        "attempt": None,
        "outcome": "sent",
        "number": status.to,
        "ErrorCode": status.error_code,
        "HttpStatus": None,
        f"{kind}Status": status.status,
        f"{kind}Sid": status.sid,
    }
    reason = SUPPRESSING_CODES.get(status.error_code) if status.error_code is not None else None
    if reason is not None:
        detail["Reason"] = reason
    return TWILIO_ERROR, detail


def form_of(body: bytes) -> dict[str, str]:
    """A callback's form parameters. One value a name: Twilio never repeats one."""
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


class StatusCallbacks:
    def __init__(
        self,
        public_url: Callable[[], str | None],
        auth_token: Callable[[], str],
        results: ResultsTable,
        events: EventPublisher,
        ledger: CallLedger,
        metrics: Metrics,
    ) -> None:
        """`public_url` and `auth_token` are factories so the URL (chalicelib.aws.api_url) and
        the secret are read on the first callback, not at import."""
        self._public_url = public_url
        self._auth_token = auth_token
        self._results = results
        self._events = events
        self._ledger = ledger
        self._metrics = metrics

    def respond(self, request: Request | None) -> Response:
        """The HTTP answer to one callback: 204, 403 (not Twilio's) or 400 (malformed)."""
        request = current(request)
        form = form_of(raw_body_of(request))
        signature = request.headers.get("X-Twilio-Signature")
        try:
            self.handle(request.query_params or {}, form, signature)
        except CallbackRejected as error:
            log.warning("status callback refused: %s", error)
            raise ForbiddenError(str(error)) from None
        except MalformedCallback as error:
            raise BadRequestError(str(error)) from None
        return Response(body="", status_code=204)

    def handle(
        self, query: Mapping[str, str], form: Mapping[str, str], signature: str | None
    ) -> bool:
        """Check and apply one callback that came through the REST route, whose URL Twilio
        signed is the route's public URL with the query (API Gateway passes it parsed).

        Raises CallbackRejected (not signed by Twilio for this URL, or for a message the row's
        call did not create) or MalformedCallback."""
        public_url = self._public_url()
        if public_url is None:
            # Nothing can be checked without the URL Twilio signed, so nothing is accepted.
            raise CallbackRejected(
                "no status callback URL: STATUS_CALLBACK_URL is unset and the API's URL is not"
                " known (API_URL_PARAMETER)"
            )
        return self.accept(callback_url_of(public_url, query), query, form, signature)

    def accept(
        self, url: str, query: Mapping[str, str], form: Mapping[str, str], signature: str | None
    ) -> bool:
        """Check and apply one callback sent to `url` (query included, as Twilio signed it);
        True if it changed the row's delivery status. The REST route and the callback function's
        URL (chalicelib.api.callback_url) both come here."""
        check_signature(self._auth_token(), url, form, signature)
        status = DeliveryStatus.parse(query, form)
        binding = self._ledger.bind_callback(status.job_id, status.row, status.sid, status.to)
        if binding != "bound":
            raise CallbackRejected(
                f"job {status.job_id} row {status.row} did not create {status.sid} ({binding})"
            )
        if final_status(status.api, status.status) is None:
            # Not stored: a write unit a callback that nothing reads (module docstring).
            return False
        recorded = self._results.record_delivery(
            status.job_id,
            status.row,
            status=status.status,
            rank=status.rank,
            error_code=status.error_code,
            api=status.api,
            duration=status.duration,
            answered_by=status.answered_by,
        )
        if not recorded:
            log.info(
                "job %s row %d: %s arrived after a later status; kept the later one",
                status.job_id,
                status.row,
                status.status,
            )
            return False
        if status.error_code is not None:
            self._events.put([delivery_event(status)])
        if status.api == "messages":
            # The delivery-rate alarm is about messages; a call's `failed` is another matter.
            count_delivery(self._metrics, status.status)
        return True
