"""The resources the emulator creates, each with its timeline (the statuses it takes on the
emulator's clock, one every `step`), and the account's store of them, which every API's operations
share."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from callqueue.local.emulator.core import Json, _not_found


@dataclass(frozen=True)
class _Stage:
    """A status a resource takes at `t` (emulator clock) on the emulator's own timeline."""

    t: float
    status: str


@dataclass(frozen=True)
class _Stored:
    """A created resource: as it was answered at creation, and the statuses it goes through.
    `seq` orders resources of one kind by creation (list pages are newest first)."""

    seq: int
    created_at: float
    resource: Json
    stages: tuple[_Stage, ...]
    error_code: int | None = None
    # A call's, with answering-machine detection: who answers, once it is answered.
    answered_by: str | None = None

    @property
    def sid(self) -> str:
        return str(self.resource["sid"])

    def stage_at(self, now: float) -> _Stage:
        current = self.stages[0]
        for stage in self.stages:
            if stage.t <= now:
                current = stage
        return current

    def reached(self, status: str, now: float) -> float | None:
        """When the resource took `status`, if it has by `now`."""
        return next((s.t for s in self.stages if s.status == status and s.t <= now), None)


class _AccountStore:
    """The emulated account's resources, which each API's operations (the subclasses) create and
    read. `step`: seconds between a resource's status changes on the emulator's timeline."""

    def __init__(
        self,
        account_sid: str,
        clock: Callable[[], float],
        *,
        step: float = 0.05,
        trial_account: bool = False,
    ) -> None:
        self.account_sid = account_sid
        self._clock = clock
        self._step = step
        self._trial_account = trial_account
        self._lock = threading.Lock()
        self._seq = 0
        self._messages: list[_Stored] = []
        self._calls: list[_Stored] = []
        self._executions: list[_Stored] = []
        self._verifications: list[_Stored] = []

    def _store(self, into: list[_Stored], record: Callable[[int], _Stored]) -> _Stored:
        with self._lock:
            self._seq += 1
            stored = record(self._seq)
            into.append(stored)
        return stored

    def _newest_first(self, records: list[_Stored]) -> list[_Stored]:
        with self._lock:
            return list(reversed(records))

    def _find(self, records: list[_Stored], sid: str, path: str) -> _Stored:
        with self._lock:
            found = next((r for r in records if r.sid == sid), None)
        if found is None:
            raise _not_found(path)
        return found
