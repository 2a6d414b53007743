"""How many SMS segments a message body costs, which is what senders are rate-limited and billed by.

A body that uses only the GSM 03.38 alphabet is sent as GSM-7: 160 septets in one segment, 153 per
segment once split (the rest of each segment carries the concatenation header). Characters of the
extension table take two septets (an escape and the character). Any other character turns the whole
body into UCS-2: 70 UTF-16 code units in one segment, 67 per segment once split; characters outside
the Basic Multilingual Plane (most emoji) take two code units.

When a body is split, a character is never cut across two segments: an escaped GSM-7 character or
a UTF-16 surrogate pair that does not fit in what is left of a segment starts the next one, as
handsets and Twilio's segment calculator do. That can cost one segment more than plain division.

An empty body counts 0 segments: nothing is sent as text (a media-only message is billed as MMS,
which this module does not count).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION: Final = frozenset("\f^{}\\[~]|€")
_GSM7: Final = GSM7_BASIC | GSM7_EXTENSION

GSM7_SINGLE: Final = 160
GSM7_PART: Final = 153
UCS2_SINGLE: Final = 70
UCS2_PART: Final = 67
_BMP_LAST: Final = "\uffff"


def sms_segments(body: str) -> tuple[Encoding, int]:
    """The encoding Twilio will use for a body and the number of segments it takes."""
    if not body:
        return "GSM-7", 0
    if _GSM7.issuperset(body):
        if GSM7_EXTENSION.isdisjoint(body):
            # One septet a character: a part holds the same number of each.
            return "GSM-7", _plain_count(len(body), GSM7_SINGLE, GSM7_PART)
        if len(body) + sum(map(body.count, GSM7_EXTENSION)) <= GSM7_SINGLE:
            return "GSM-7", 1
        units = [2 if char in GSM7_EXTENSION else 1 for char in body]
        return "GSM-7", _count(units, GSM7_SINGLE, GSM7_PART)
    if max(body) <= _BMP_LAST:
        return "UCS-2", _plain_count(len(body), UCS2_SINGLE, UCS2_PART)
    units = [2 if ord(char) > 0xFFFF else 1 for char in body]
    return "UCS-2", _count(units, UCS2_SINGLE, UCS2_PART)


def sms_segments_by_unit(body: str) -> tuple[Encoding, int]:
    """sms_segments counted a character at a time (what its shortcuts are tested against)."""
    if not body:
        return "GSM-7", 0
    if _GSM7.issuperset(body):
        units = [2 if char in GSM7_EXTENSION else 1 for char in body]
        return "GSM-7", _count(units, GSM7_SINGLE, GSM7_PART)
    units = [2 if ord(char) > 0xFFFF else 1 for char in body]
    return "UCS-2", _count(units, UCS2_SINGLE, UCS2_PART)


def _plain_count(length: int, single: int, part: int) -> int:
    return 1 if length <= single else -(-length // part)


def _count(units: list[int], single: int, part: int) -> int:
    if sum(units) <= single:
        return 1
    segments, used = 1, 0
    for size in units:
        if used + size > part:
            segments, used = segments + 1, 0
        used += size
    return segments


def message_cost(params: Mapping[str, object], segments: int | None = None) -> int:
    """What a message costs on its sender's limit: its SMS segments (Twilio meters senders by
    segment); a message with media or no body, one. `segments`: sms_segments(Body)'s count when
    the caller has it (None: counted here)."""
    body = params.get("Body")
    if not isinstance(body, str) or not body or params.get("MediaUrl"):
        return 1
    if segments is None:
        segments = sms_segments(body)[1]
    return segments if segments > 1 else 1
