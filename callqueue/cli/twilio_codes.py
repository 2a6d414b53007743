"""Names of the error codes a run's rows can end with, as a person reads them in a summary: the
Twilio codes the APIs callqueue calls answer with (https://www.twilio.com/docs/api/errors, the
emulator's magic numbers among them) and the project's own (`cancelled`)."""

from __future__ import annotations

from collections.abc import Mapping

NAMES: Mapping[str, str] = {
    "20001": "invalid or unknown parameter",
    "20003": "authentication failed",
    "20404": "resource not found",
    "20429": "too many requests",
    "21201": "no 'To' number",
    "21205": "invalid Url",
    "21210": "'From' number not verified for the account",
    "21211": "invalid 'To' number",
    "21212": "invalid 'From' number (caller ID)",
    "21213": "no 'From' number",
    "21214": "'To' number cannot be reached",
    "21215": "no permission to call that region",
    "21216": "account not allowed to call the number",
    "21217": "number does not appear to be valid",
    "21408": "no permission to send SMS to that region",
    "21602": "message body required",
    "21603": "'From' number required",
    "21604": "'To' number required",
    "21606": "'From' number cannot send to this destination",
    "21610": "recipient unsubscribed (replied STOP)",
    "21611": "sender's message queue full",
    "21612": "'To' number not reachable by SMS",
    "21614": "'To' number is not a mobile number",
    "21617": "message body over 1600 characters",
    "21701": "Messaging Service does not exist",
    "30003": "unreachable handset",
    "30005": "unknown destination handset",
    "30006": "landline or unreachable carrier",
    "30007": "filtered by the carrier",
    "35115": "SendAt must be 5 minutes to 35 days ahead",
    "35118": "scheduling needs a Messaging Service",
    "60200": "invalid parameter (Verify)",
    "60205": "SMS not supported by a landline",
    "cancelled": "the job was cancelled before the row's call",
}


def name_of(code: str | int) -> str:
    """What `code` means, or that this program does not know it (the code is still shown)."""
    return NAMES.get(str(code), "see twilio.com/docs/api/errors")
