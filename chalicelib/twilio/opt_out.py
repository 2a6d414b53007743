"""Twilio's opt-out, opt-in and help keywords, and which of them an incoming message's body is.

On long codes Twilio itself handles the standard English opt-out replies and blocks further
messages to that number from that sender until an opt-in reply; HELP and INFO get the help reply.
The incoming-message webhook still receives the reply, so the suppression list can follow it.
Source: twilio.com/docs/messaging/tutorials/advanced-opt-out; Twilio help article 223134027
(as summarised in ../shared/TWILIO-FACTS.md). YES is listed there as a common opt-in.

Twilio matches a keyword against the whole body, trimmed and case-insensitive: "stop please" and
"STOPPED" are not opt-outs. Localised and custom keywords are configured per Messaging Service
(Advanced Opt-Out); for a number in such a service Twilio's webhook carries `OptOutType` (STOP,
START or HELP) for whichever of its keywords the reply was, and that is believed over the body
(Twilio help article 31560110671259).
"""

from __future__ import annotations

from collections.abc import Mapping
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


_OPT_OUT_TYPES: Final = {"STOP": Keyword.OPT_OUT, "START": Keyword.OPT_IN, "HELP": Keyword.HELP}


def keyword_of_reply(form: Mapping[str, str]) -> Keyword | None:
    """The keyword an incoming message's webhook says it is: Twilio's `OptOutType` when the
    Messaging Service's Advanced Opt-Out recognised one (localised keywords included), else the
    default keywords matched against its body."""
    kind = _OPT_OUT_TYPES.get(form.get("OptOutType", "").strip().upper())
    return kind if kind is not None else keyword_of(form.get("Body", ""))
