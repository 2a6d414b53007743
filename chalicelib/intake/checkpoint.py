"""Where a split that ran out of time stopped, so that the next invocation goes on from there.

A split checks, between records, how much time its Lambda has left; with less than the reserve
it stores its place and hands the rest to a continuation (chalicelib.intake.continuation). The
place is counted in records, not bytes: the file's SHA-256 (the job's content key) covers every
byte and a hash's state cannot be stored, so a continuation reads the file from its start
anyway; it parses the records already split without validating or writing them, which costs a
fraction of splitting them (docs/decisions/split-checkpoints.md).

A checkpoint is numbered (`part`): the job item's `split_part` says which one is current, and a
continuation moves it on with a conditional write, so of two deliveries of one continuation only
the first to finish its part goes on (both write the same chunks, under the same keys).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from chalicelib.core.costs import CostEstimate
from chalicelib.intake.chunking import GroupState

# Time kept back for storing the checkpoint (partial chunks, the rejects so far) and starting
# the continuation; a split stops once less than this is left.
RESERVE_MS: Final = 60_000
# Records between two looks at the clock: a look is cheap, but not free per row.
CHECK_EVERY: Final = 256


@dataclass(frozen=True)
class Checkpoint:
    """A split's place after `records` records (valid, rejected or unreadable alike)."""

    part: int
    records: int
    valid: int
    rejected: int
    groups: tuple[GroupState, ...] = ()
    # CostEstimate's lines: (api, kind, country, rows, units) and (api, kind, where, rows).
    priced: tuple[tuple[str, str, str, str, str], ...] = ()
    unpriced: tuple[tuple[str, str, str, int], ...] = ()

    def to_text(self) -> str:
        return json.dumps(
            {
                "part": self.part,
                "records": self.records,
                "valid": self.valid,
                "rejected": self.rejected,
                "groups": [[list(g.zones), g.rows, g.chunks] for g in self.groups],
                "priced": [list(line) for line in self.priced],
                "unpriced": [list(line) for line in self.unpriced],
            },
            separators=(",", ":"),
        )

    @classmethod
    def of_text(cls, text: str) -> Checkpoint:
        data = json.loads(text)
        return cls(
            part=int(data["part"]),
            records=int(data["records"]),
            valid=int(data["valid"]),
            rejected=int(data["rejected"]),
            groups=tuple(GroupState(tuple(z), int(r), int(c)) for z, r, c in data["groups"]),
            priced=tuple((a, k, c, str(r), str(u)) for a, k, c, r, u in data["priced"]),
            unpriced=tuple((a, k, w, int(n)) for a, k, w, n in data["unpriced"]),
        )

    def cost_into(self, cost: CostEstimate) -> None:
        """Puts the estimate so far back into a fresh CostEstimate."""
        for api, kind, country, rows, units in self.priced:
            cost.priced[(api, kind, country)] = [Decimal(rows), Decimal(units)]
        for api, kind, where, count in self.unpriced:
            cost.unpriced[(api, kind, where)] = count


def cost_lines(
    cost: CostEstimate,
) -> tuple[tuple[tuple[str, str, str, str, str], ...], tuple[tuple[str, str, str, int], ...]]:
    """A CostEstimate's running lines as a checkpoint keeps them (Decimals as text: exact)."""
    priced = tuple((a, k, c, str(r), str(u)) for (a, k, c), (r, u) in cost.priced.items())
    unpriced = tuple((a, k, w, n) for (a, k, w), n in cost.unpriced.items())
    return priced, unpriced


# About a minute of re-reading on Lambda: parts of a smaller file are never refused.
PROGRESS_CHECKED_FROM = 1_000_000


@dataclass(frozen=True)
class Budget:
    """How long this invocation may still split: `remaining_ms()` is the Lambda context's
    get_remaining_time_in_millis (injected in tests); `continue_split()` starts the next
    invocation on the same upload. No budget: the split runs to its end, as locally."""

    remaining_ms: Callable[[], int]
    continue_split: Callable[[], None]
    reserve_ms: int = RESERVE_MS
    check_every: int = CHECK_EVERY
    # From this many records on, a part must add a share of them (split_pass.MIN_PART_PROGRESS):
    # below it, re-reading is cheap whatever the parts' sizes.
    progress_checked_from: int = PROGRESS_CHECKED_FROM

    def exhausted(self) -> bool:
        return self.remaining_ms() < self.reserve_ms
