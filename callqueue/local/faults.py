"""Fault injection spec for the Twilio emulator.

A spec such as ``429=0.1,500=0.05,reset=0.05,lost-response=0.05,crash=0.05`` gives, per request to
one of the emulated API operations, the probability of each kind of failure. The emulator draws one
number in [0, 1) per request and maps it onto the kinds in the fixed order of `FaultKind`, so a
seeded `random.Random` replays the same faults for the same sequence of requests. Kinds added later
come last in that order, so an older spec draws the same faults as it always did.

`READ_KINDS` are the kinds that make sense for a read (a list or fetch), which changes nothing and
so can never have been "processed".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import StrEnum


class FaultKind(StrEnum):
    """What the emulator does instead of (or after) answering normally."""

    TOO_MANY_REQUESTS = "429"
    """Answer 429 with code 20429; the request is not processed."""
    SERVER_ERROR = "500"
    """Answer 500 with code 20500; the request is not processed."""
    RESET = "reset"
    """Drop the connection before processing; no response."""
    LOST_RESPONSE = "lost-response"
    """Process the request (the message exists), then drop the connection; no response."""
    CRASH = "crash"
    """Process and answer normally, with the header ``X-Callqueue-Fault: crash``: the local
    runtime's HTTP client raises on it, like a Lambda dying right after Twilio answered."""
    SERVER_ERROR_AFTER = "5xx-after"
    """Process the request (the message exists), then answer 502, 503 or 504 with an edge proxy's
    HTML page instead of Twilio's JSON: the answer was lost between Twilio and the client."""
    SLOW = "slow"
    """Process the request, then answer normally only after the emulator's `slow_seconds` (longer
    than the twilio client's read timeout): the client gives up on a request that took effect."""


FAULT_HEADER = "X-Callqueue-Fault"
"""Header on a response whose sender must behave as if it crashed right after receiving it."""

READ_KINDS = frozenset(
    {FaultKind.TOO_MANY_REQUESTS, FaultKind.SERVER_ERROR, FaultKind.RESET, FaultKind.SLOW}
)


# Floating-point slack so that "0.1,0.2,0.7" is not rejected for summing to 1.0000000000000002.
_SUM_TOLERANCE = 1e-9


@dataclass(frozen=True)
class FaultSpec:
    """Probability of each fault kind per request; otherwise the request goes normally."""

    too_many_requests: float = 0.0
    server_error: float = 0.0
    reset: float = 0.0
    lost_response: float = 0.0
    crash: float = 0.0
    server_error_after: float = 0.0
    slow: float = 0.0

    def __post_init__(self) -> None:
        for field in fields(self):
            probability = getattr(self, field.name)
            if not isinstance(probability, int | float) or not 0.0 <= probability <= 1.0:
                raise ValueError(
                    f"fault probability for {_FIELD_KINDS[field.name].value!r} must be a number "
                    f"between 0 and 1, got {probability!r}"
                )
        if self.total > 1.0 + _SUM_TOLERANCE:
            raise ValueError(f"fault probabilities sum to {self.total:g}, more than 1")

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """Parse ``kind=probability`` pairs separated by commas; an empty text means no faults.

        Raises ValueError, with a message naming the offending part, for an unknown kind, a
        repeated kind, a probability that is not a number in [0, 1], probabilities summing to more
        than 1, or any other malformed text.
        """
        probabilities: dict[str, float] = {}
        if not text.strip():
            return cls()
        for item in text.split(","):
            kind_text, equals, value_text = item.partition("=")
            kind_text, value_text = kind_text.strip(), value_text.strip()
            if not equals or not kind_text or not value_text:
                raise ValueError(
                    f"malformed fault {item.strip()!r} in {text!r}: expected kind=probability, "
                    f"e.g. 429=0.1"
                )
            try:
                kind = FaultKind(kind_text)
            except ValueError:
                raise ValueError(
                    f"unknown fault kind {kind_text!r} in {text!r}; expected one of "
                    f"{', '.join(k.value for k in FaultKind)}"
                ) from None
            field_name = _KIND_FIELDS[kind]
            if field_name in probabilities:
                raise ValueError(f"fault kind {kind.value!r} given twice in {text!r}")
            try:
                probability = float(value_text)
            except ValueError:
                raise ValueError(
                    f"probability {value_text!r} for fault {kind.value!r} is not a number"
                ) from None
            if math.isnan(probability):
                raise ValueError(f"probability for fault {kind.value!r} is not a number")
            probabilities[field_name] = probability
        return cls(**probabilities)

    @property
    def total(self) -> float:
        return sum(self.probabilities().values())

    def probabilities(self) -> dict[FaultKind, float]:
        """Probability per kind, in the order `pick` applies them."""
        return {kind: getattr(self, field_name) for kind, field_name in _KIND_FIELDS.items()}

    def kinds(self) -> frozenset[FaultKind]:
        """The kinds with a non-zero probability."""
        return frozenset(kind for kind, p in self.probabilities().items() if p)

    def pick(self, draw: float) -> FaultKind | None:
        """The fault for a uniform draw in [0, 1), or None when the request goes normally."""
        threshold = 0.0
        for kind, probability in self.probabilities().items():
            threshold += probability
            if draw < threshold:
                return kind
        return None

    def __str__(self) -> str:
        """The spec in `parse`'s syntax, listing only non-zero kinds."""
        return ",".join(
            f"{kind.value}={probability!r}"
            for kind, probability in self.probabilities().items()
            if probability
        )


_KIND_FIELDS: dict[FaultKind, str] = {
    FaultKind.TOO_MANY_REQUESTS: "too_many_requests",
    FaultKind.SERVER_ERROR: "server_error",
    FaultKind.RESET: "reset",
    FaultKind.LOST_RESPONSE: "lost_response",
    FaultKind.CRASH: "crash",
    FaultKind.SERVER_ERROR_AFTER: "server_error_after",
    FaultKind.SLOW: "slow",
}
_FIELD_KINDS: dict[str, FaultKind] = {name: kind for kind, name in _KIND_FIELDS.items()}
