"""What became of a row after Twilio accepted it: the final status of its message (delivered,
undelivered, failed) or its call (completed, busy, no-answer, failed, canceled), as Twilio's
status callbacks tell it, counted for a job's status, its reports and `callqueue run`'s summary.

Only rows that ended `sent` have a delivery status, and only the Messages and Calls APIs send
status callbacks (a Lookup or a Verify check has no later life). A sent row without a final
status yet is `pending`: its callback has not come (carriers report a message's fate seconds to
hours later; some never do), or the stack asks for none (STATUS_CALLBACK_URL unset and no API
URL to derive it from), or the row asked for its own StatusCallback elsewhere.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

# The final statuses of each API, in the order reports show them. A WhatsApp message's `read`
# comes after `delivered` and is counted as delivered, and again under `read`.
FINAL_STATUSES: Final[Mapping[str, tuple[str, ...]]] = {
    "messages": ("delivered", "undelivered", "failed", "canceled"),
    "calls": ("completed", "busy", "no-answer", "failed", "canceled"),
}
TRACKED_APIS: Final = tuple(FINAL_STATUSES)
# The final statuses of a message or call that did not get through: what a retry may resend
# under the name UNDELIVERED (chalicelib.api.retry).
NOT_DELIVERED: Final[Mapping[str, tuple[str, ...]]] = {
    "messages": ("undelivered", "failed"),
    "calls": ("busy", "no-answer", "failed"),
}
UNDELIVERED: Final = "undelivered"
# `answered_by` values that mean a machine, not a person, took the call (AMD).
MACHINE_ANSWERS: Final = frozenset(
    {"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"}
)


def final_status(api: str | None, status: str | None) -> str | None:
    """The final status a row's latest callback status counts as; None while it is pending."""
    if api is None or api not in FINAL_STATUSES or status is None:
        return None
    if api == "messages" and status == "read":
        return "delivered"
    return status if status in FINAL_STATUSES[api] else None


def not_delivered(api: str | None, status: str | None) -> bool:
    """Whether a sent row's final status says its message or call did not get through."""
    return api is not None and status in NOT_DELIVERED.get(api, ())


@dataclass
class DeliveryTally:
    """A job's sent rows by their final status, counted one row at a time."""

    sent: Counter[str] = field(default_factory=Counter)
    finals: dict[str, Counter[str]] = field(default_factory=dict)
    # Messages read (WhatsApp), calls a machine answered: parts of delivered and completed.
    read: int = 0
    machine: int = 0
    # Error codes of final statuses (30003 unreachable, ...), by code.
    codes: Counter[str] = field(default_factory=Counter)

    def add(
        self,
        api: str | None,
        outcome: str | None,
        status: str | None,
        answered_by: str | None = None,
        error_code: int | None = None,
    ) -> None:
        if outcome != "sent" or api is None or api not in FINAL_STATUSES:
            return
        self.sent[api] += 1
        final = final_status(api, status)
        if final is None:
            return
        self.finals.setdefault(api, Counter())[final] += 1
        if error_code is not None:
            self.codes[str(error_code)] += 1
        self.read += status == "read"
        self.machine += api == "calls" and final == "completed" and answered_by in MACHINE_ANSWERS

    def pending(self, api: str) -> int:
        return self.sent[api] - sum(self.finals.get(api, Counter()).values())

    def view(self) -> dict[str, dict[str, int]]:
        """Per API that sent anything: each final status's count and `pending` (with `read`
        for messages and `answered_by_machine` for calls when any)."""
        view: dict[str, dict[str, int]] = {}
        for api in TRACKED_APIS:
            if not self.sent[api]:
                continue
            finals = self.finals.get(api, Counter())
            counts = {s: finals[s] for s in FINAL_STATUSES[api]}
            counts["pending"] = self.pending(api)
            if api == "messages" and self.read:
                counts["read"] = self.read
            if api == "calls" and self.machine:
                counts["answered_by_machine"] = self.machine
            view[api] = counts
        return view

    def error_codes(self) -> dict[str, int]:
        """How many sent rows ended undelivered or failed with each error code, by code."""
        return dict(sorted(self.codes.items()))

    def total_pending(self) -> int:
        return sum(self.pending(api) for api in TRACKED_APIS)


def merged_view(views: list[Mapping[str, Mapping[str, int]]]) -> dict[str, dict[str, int]]:
    """The sum of several jobs' delivery views (a run of several files)."""
    merged: dict[str, dict[str, int]] = {}
    for view in views:
        for api, counts in view.items():
            into = merged.setdefault(api, {})
            for name, n in counts.items():
                into[name] = into.get(name, 0) + n
    return merged


def delivery_of(view: Any) -> dict[str, dict[str, int]]:
    """A delivery view read back from JSON (a job's status, a report): only well-formed
    counts; anything else is dropped rather than shown wrong."""
    if not isinstance(view, Mapping):
        return {}
    return {str(api): counts_of(counts) for api, counts in view.items() if api in FINAL_STATUSES}


def counts_of(value: Any) -> dict[str, int]:
    """Counts by name read back from JSON; anything that is not a whole number is dropped."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)}
