"""Incoming messages: a recipient's reply (STOP, START, HELP, any text) posted to the account's
incoming-message webhook, signed with the account's auth token, with the parameters Twilio sends
(docs/rest-api.md, "Incoming messages")."""

from __future__ import annotations

import urllib.request

from twilio.request_validator import RequestValidator

from callqueue.local.emulator.callbacks import post_signed
from callqueue.local.emulator.core import API_VERSION, _new_sid


def reply_form(account_sid: str, from_number: str, to_number: str, body: str) -> dict[str, str]:
    """What Twilio posts for an incoming SMS from `from_number` to the account's `to_number`."""
    sid = _new_sid("SM")
    return {
        "AccountSid": account_sid,
        "ApiVersion": API_VERSION,
        "Body": body,
        "From": from_number,
        "MessageSid": sid,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "SmsStatus": "received",
        "To": to_number,
    }


def send_reply(
    url: str, account_sid: str, auth_token: str, from_number: str, to_number: str, body: str
) -> int | None:
    """Post one incoming message to `url` now; the HTTP status it got (None: unreachable)."""
    # No proxy from the environment may capture a loopback webhook.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    form = reply_form(account_sid, from_number, to_number, body)
    return post_signed(opener, RequestValidator(auth_token), url, form)
