"""Twilio's opt-out, opt-in and help keywords, and which of them an incoming message's body is.

On long codes Twilio itself handles the standard English opt-out replies and blocks further
messages to that number from that sender until an opt-in reply; HELP and INFO get the help reply.
The incoming-message webhook still receives the reply, so the suppression list can follow it.
Source: twilio.com/docs/messaging/tutorials/advanced-opt-out; Twilio help article 223134027
(as summarised in ../shared/TWILIO-FACTS.md). YES is listed there as a common opt-in.

Twilio matches a keyword against the whole body, trimmed and case-insensitive: "stop please" and
"STOPPED" are not opt-outs. Localised keywords are configured per Messaging Service (Advanced
Opt-Out), so none are assumed here beyond the defaults.
"""

from __future__ import annotations

from enum import Enum
from typing import Final


class Keyword(Enum):
    OPT_OUT = "opt-out"
    OPT_IN = "opt-in"
    HELP = "help"


OPT_OUT_KEYWORDS: Final = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_KEYWORDS: Final = frozenset({"START", "UNSTOP", "YES"})
HELP_KEYWORDS: Final = frozenset({"HELP", "INFO"})

_KEYWORDS: Final = {
    **dict.fromkeys(OPT_OUT_KEYWORDS, Keyword.OPT_OUT),
    **dict.fromkeys(OPT_IN_KEYWORDS, Keyword.OPT_IN),
    **dict.fromkeys(HELP_KEYWORDS, Keyword.HELP),
}


def keyword_of(body: str) -> Keyword | None:
    """The keyword a message body is, matched as Twilio does (whole body, trimmed, any case);
    None for any other text."""
    return _KEYWORDS.get(body.strip().upper())
