"""The incoming-message route: a recipient's reply, as Twilio posts it to a number's (or a
Messaging Service's) incoming webhook, keeps the suppression list in step with opt-outs.

A reply that is one of Twilio's opt-out keywords puts its sender on the suppression list; an
opt-in keyword takes it off; HELP is counted and logged without the number; any other text is
neither stored nor logged (chalicelib.twilio.opt_out says how keywords match). That is all this
route may change: the `From` number's entry in the suppression list, and only for replies to this
stack's account, signed by Twilio for this route's URL exactly as status callbacks are
(chalicelib.twilio.callbacks.check_signature).

Every signed reply is answered 200 with empty TwiML, so Twilio sends no reply of its own making
(on long codes Twilio answers the keywords itself).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl

from chalice.app import BadRequestError, ForbiddenError, Request, Response

from chalicelib.api.request_bodies import current, raw_body_of
from chalicelib.intake.validation.exceptions import InvalidNumber
from chalicelib.intake.validation.phone_numbers import normalise_number
from chalicelib.observability import Metrics
from chalicelib.sending.suppression import SuppressionList
from chalicelib.twilio.callbacks import (
    CallbackRejected,
    MalformedCallback,
    callback_url_of,
    check_signature,
)
from chalicelib.twilio.opt_out import Keyword, keyword_of_reply

log = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
METRIC = "InboundKeywords"


def number_tag(number: str) -> str:
    """What a log line may say of a number: a short hash and its last two digits."""
    return f"{hashlib.sha256(number.encode()).hexdigest()[:8]}..{number[-2:]}"


class InboundMessages:
    def __init__(
        self,
        public_url: Callable[[], str | None],
        auth_token: Callable[[], str],
        account_sid: Callable[[], str],
        suppression: SuppressionList,
        metrics: Metrics,
    ) -> None:
        """`public_url`, `auth_token` and `account_sid` are factories so the URL
        (chalicelib.aws.api_url) and the secret are read on the first reply, not at import."""
        self._public_url = public_url
        self._auth_token = auth_token
        self._account_sid = account_sid
        self._suppression = suppression
        self._metrics = metrics

    def respond(self, request: Request | None) -> Response:
        """200 with empty TwiML, 403 (not Twilio's, or another account's) or 400 (no From)."""
        request = current(request)
        body = raw_body_of(request).decode("utf-8", "replace")
        form = dict(parse_qsl(body, keep_blank_values=True))
        try:
            self.handle(request.query_params or {}, form, request.headers.get("X-Twilio-Signature"))
        except CallbackRejected as error:
            log.warning("incoming message refused: %s", error)
            raise ForbiddenError(str(error)) from None
        except MalformedCallback as error:
            raise BadRequestError(str(error)) from None
        finally:
            self._metrics.flush()
        return Response(body=EMPTY_TWIML, status_code=200, headers={"Content-Type": "text/xml"})

    def handle(
        self, query: Mapping[str, str], form: Mapping[str, str], signature: str | None
    ) -> Keyword | None:
        """Check one incoming message and apply its keyword; returns the keyword, if any.

        Raises CallbackRejected or MalformedCallback."""
        public_url = self._public_url()
        if public_url is None:
            raise CallbackRejected("INBOUND_WEBHOOK_URL is not configured")
        check_signature(self._auth_token(), callback_url_of(public_url, query), form, signature)
        if form.get("AccountSid") != self._account_sid():
            raise CallbackRejected("the message is for another Twilio account")
        sender = form.get("From", "").strip()
        if not sender:
            raise MalformedCallback("From is required")
        keyword = keyword_of_reply(form)
        if keyword is None:
            return None
        try:
            number = normalise_number(sender)
        except InvalidNumber:
            raise MalformedCallback("From is not a phone number") from None
        if keyword is Keyword.OPT_OUT:
            # The reply as the reason, cut: a custom keyword may be any text.
            word = form.get("Body", "").strip().upper()[:40]
            self._suppression.add(number, f"replied {word}", source="reply")
        elif keyword is Keyword.OPT_IN:
            self._suppression.remove(number)
        log.info("incoming %s from %s", keyword.value, number_tag(number))
        self._metrics.count(METRIC, Keyword=keyword.value)
        return keyword
