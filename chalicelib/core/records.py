"""The records that travel between the pipeline's stages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Api = Literal["messages", "calls", "lookup", "verify", "studio"]
APIS: tuple[Api, ...] = ("messages", "calls", "lookup", "verify", "studio")

# A Twilio request parameter is a single value, or a list for repeatable ones (MediaUrl).
ParamValue = str | list[str]


@dataclass(frozen=True)
class CallRequest:
    """One validated Twilio API call: the endpoint and its parameters under Twilio's own names."""

    api: Api
    params: dict[str, ParamValue]
    # The row the call is made for, when it is made from the queue: a status callback names it.
    job_id: str | None = None
    row: int | None = None
    # The user's own columns that travel with the row (its reference, kept columns): never
    # sent to Twilio (chalicelib.intake.carry).
    carried: dict[str, str] = field(default_factory=dict)


def number_in(params: Mapping[str, Any]) -> str | None:
    """The number (or address) a request calls: `To`, or `PhoneNumber` for a Lookup."""
    value = params.get("To", params.get("PhoneNumber"))
    return value if isinstance(value, str) else None


Outcome = Literal["sent", "failed", "unknown", "retrying", "dead_lettered", "suppressed"]
# The final outcomes a row can end in; "retrying" is an attempt's outcome, never a row's.
FINAL_OUTCOMES: tuple[str, ...] = (
    "rejected",
    "suppressed",
    "sent",
    "failed",
    "unknown",
    "dead_lettered",
)


@dataclass(frozen=True)
class ChunkRow:
    """A valid row as stored in a chunk file: due `offset` seconds after the job starts."""

    row: int
    api: Api
    params: dict[str, ParamValue]
    offset: float
    carried: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "api": self.api,
            "params": self.params,
            "offset": self.offset,
            **carried_json(self.carried),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChunkRow:
        return cls(
            row=int(data["row"]),
            api=data["api"],
            params=dict(data["params"]),
            offset=float(data["offset"]),
            carried=dict(data.get("carried", {})),
        )


@dataclass(frozen=True)
class QueuedRow:
    """A row on the send queue: one attempt at one Twilio call, due at `due_at` (Unix seconds)."""

    job_id: str
    row: int
    api: Api
    params: dict[str, ParamValue]
    due_at: float
    attempt: int = 1
    # The job's start when the row was enqueued: a job paused and resumed starts later, and
    # its rows' times move with it.
    job_start: float = 0.0
    # How many times this attempt's call was found in doubt and could not be settled yet
    # (Twilio did not answer the look-up): bounded, then the row ends `unknown`.
    doubts: int = 0
    carried: dict[str, str] = field(default_factory=dict)
    # When the send window the row was released in closes (0: it has none), and the row's
    # group of time zones in its job (chalicelib.core.slices): a row the job's pause moved
    # past that close waits for the window to open again.
    until: float = 0.0
    group: int = 0
    # When the row was released and when its run's first row was due, measured as `due_at` is
    # (0.0: unknown): a rate change after its release re-times the row (chalicelib.core.pace).
    released_at: float = 0.0
    run_at: float = 0.0

    @property
    def number(self) -> str | None:
        """The phone number (or address) the call goes to."""
        return number_in(self.params)

    @property
    def request(self) -> CallRequest:
        return CallRequest(api=self.api, params=self.params, job_id=self.job_id, row=self.row)

    def retry(self, due_at: float, job_start: float) -> QueuedRow:
        """The next attempt, due at `due_at` as measured from the job's start `job_start`. Its
        time is a backoff's, not the job's rate's: a rate change does not re-time it."""
        return replace(
            self,
            due_at=due_at,
            attempt=self.attempt + 1,
            job_start=job_start,
            doubts=0,
            released_at=0.0,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "row": self.row,
            "api": self.api,
            "params": self.params,
            "due_at": self.due_at,
            "attempt": self.attempt,
            "job_start": self.job_start,
            **({"doubts": self.doubts} if self.doubts else {}),
            **({"until": self.until, "group": self.group} if self.until else {}),
            **carried_json(self.carried),
            **(
                {"released_at": self.released_at, "run_at": self.run_at} if self.released_at else {}
            ),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QueuedRow:
        return cls(
            job_id=str(data["job_id"]),
            row=int(data["row"]),
            api=data["api"],
            params=dict(data["params"]),
            due_at=float(data["due_at"]),
            attempt=int(data.get("attempt", 1)),
            job_start=float(data.get("job_start", 0.0)),
            doubts=int(data.get("doubts", 0)),
            carried=dict(data.get("carried", {})),
            until=float(data.get("until", 0.0)),
            group=int(data.get("group", 0)),
            released_at=float(data.get("released_at", 0.0)),
            run_at=float(data.get("run_at", 0.0)),
        )


@dataclass(frozen=True)
class TwilioResult:
    """What one Twilio request produced: a response (any status), or no response at all."""

    status: int | None
    body: dict[str, Any] | None
    headers: dict[str, str]
    started_at: float
    finished_at: float
    error_code: int | None = None
    error_message: str | None = None
    more_info: str | None = None
    network_error: str | None = None
    # True when the request certainly never reached Twilio (the connection was never made).
    not_sent: bool = False

    @property
    def sid(self) -> str | None:
        if self.body is None:
            return None
        sid = self.body.get("sid")
        return sid if isinstance(sid, str) else None


def carried_json(carried: Mapping[str, str]) -> dict[str, Any]:
    # Written only when there is something: a row without a reference travels as it did before
    # references existed, and a message written then is read the same.
    return {"carried": dict(carried)} if carried else {}
