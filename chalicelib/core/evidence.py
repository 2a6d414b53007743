"""Whether a call whose outcome is not known took effect at Twilio: what Twilio holds decides.

A call is in doubt when it got no response, or a 5xx (Twilio's edge can answer 502/503/504 after
the message was created). It is settled only by evidence: a signed status callback bound to its
row (chalicelib.sending.ledger.CallLedger.bind_callback), or the resource found in Twilio's lists.
"Absent" is a verdict only where the look-up can identify the call; where it cannot (two
candidates, a list too long to read), the row is `unknown` and never called again.

The matching here is pure: the Twilio adapter fetches the candidates, this module decides.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from chalicelib.core.records import ParamValue

Verdict = Literal["found", "absent", "unknown"]

# Twilio's date_created has whole seconds, and two machines' clocks differ a little: a resource
# created by this call may show a date_created up to this much before the call started.
CLOCK_SKEW_SECONDS = 5.0

# What Twilio may add to a body: the trial-account prefix, the Messaging Service's opt-out text.
# A body is matched as contained in Twilio's, after the rewrites below, never as equal.
_SMART_ENCODING = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u2026": "...",
        "\u00a0": " ",
        "\u2002": " ",
        "\u2003": " ",
        "\u2009": " ",
        "\u200b": "",
        "\u02c6": "^",
        "\u02dc": "~",
    }
)


@dataclass(frozen=True)
class Evidence:
    """What a look-up found: the resource (as Twilio's JSON, trimmed), its absence, or neither."""

    verdict: Verdict
    # For "found": the fields of the resource kept in the envelope, with "resolved_by".
    resource: dict[str, Any] | None = None
    # For "unknown" and "absent": what was looked at, for the user's report.
    reason: str = ""
    # For "unknown": Twilio could not be asked (it may answer later), rather than it answered
    # and the answer cannot tell.
    failed: bool = False


def found(resource: Mapping[str, Any], how: str) -> Evidence:
    return Evidence("found", {**resource, "resolved_by": how})


def normalised_body(text: str) -> str:
    """A body as Twilio's smart encoding would leave it, with whitespace runs collapsed: the
    rewrites Twilio documents, so that a rewritten body still matches its row's."""
    text = unicodedata.normalize("NFC", text).translate(_SMART_ENCODING)
    return " ".join(text.split())


def body_matches(ours: str, theirs: str | None) -> bool:
    """Whether Twilio's stored body is this row's body, with any prefix or suffix Twilio adds."""
    if theirs is None:
        return False
    return normalised_body(ours) in normalised_body(theirs)


@dataclass(frozen=True)
class Candidate:
    """One resource in Twilio's list, reduced to what identifies a call."""

    sid: str
    created_at: float
    to: str | None
    from_: str | None
    body: str | None = None
    num_media: int = 0
    messaging_service_sid: str | None = None
    outbound: bool = True
    fields: Mapping[str, Any] | None = None


def match_message(
    params: Mapping[str, ParamValue], since: float, candidates: Iterable[Candidate]
) -> Evidence:
    """The message these parameters created at or after `since`, among the messages listed
    for their To (all of them back to `since` less the clock skew: the caller reads far
    enough). Matched on To, From or Messaging Service, media count, and the body where there is
    one; a row with no body (media only, a content template) is identified by the rest."""
    to = params.get("To")
    sender = params.get("From")
    service = params.get("MessagingServiceSid")
    body = params.get("Body")
    media = params.get("MediaUrl")
    media_count = len(media) if isinstance(media, list) else (1 if media else 0)
    matches: list[Candidate] = []
    for c in candidates:
        if not c.outbound or c.to != to or c.created_at < since - CLOCK_SKEW_SECONDS:
            continue
        if isinstance(sender, str) and c.from_ is not None and c.from_ != sender:
            continue
        if isinstance(service, str) and c.messaging_service_sid not in (None, service):
            continue
        if media_count and c.num_media == 0:
            continue
        if isinstance(body, str) and body and not body_matches(body, c.body):
            continue
        matches.append(c)
    return _one_of(matches, f"message to {to}")


def match_call(
    params: Mapping[str, ParamValue], since: float, candidates: Iterable[Candidate]
) -> Evidence:
    """The call these parameters created at or after `since`: by To, From and creation time."""
    to, sender = params.get("To"), params.get("From")
    matches = [
        c
        for c in candidates
        if c.outbound
        and c.to == to
        and (c.from_ is None or c.from_ == sender)
        and c.created_at >= since - CLOCK_SKEW_SECONDS
    ]
    return _one_of(matches, f"call to {to}")


def match_execution(
    params: Mapping[str, ParamValue], since: float, candidates: Iterable[Candidate]
) -> Evidence:
    """The Studio execution these parameters started at or after `since`: by the contact's
    address (the execution's To) and creation time."""
    to = params.get("To")
    matches = [c for c in candidates if c.to == to and c.created_at >= since - CLOCK_SKEW_SECONDS]
    return _one_of(matches, f"execution for {to}")


def _one_of(matches: list[Candidate], what: str) -> Evidence:
    if not matches:
        return Evidence("absent", reason=f"no {what} created since the call started")
    if len(matches) > 1:
        sids = ", ".join(sorted(m.sid for m in matches))
        return Evidence(
            "unknown",
            reason=f"{len(matches)} of Twilio's resources match this {what} ({sids}); "
            "which is this row's cannot be told",
        )
    m = matches[0]
    return found(dict(m.fields or {"sid": m.sid}), "twilio list")
