"""What a person sees while a run goes on, and durations as a person reads them.

On a terminal, one live display (rich's Live) redrawn in place: it is cut to the terminal's
width, so it never wraps into stale copies, and it says what it waits for (the stack starting,
the intake reading a file, the first call's time, rows retrying). Elsewhere (a CI log, a pipe),
plain lines without control codes, at most one every few seconds and only when something
changed.
"""

from __future__ import annotations

import contextlib
import math
import sys
import termios
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePath
from types import TracebackType
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from callqueue.report import OUTCOMES, JobTotals

# A non-terminal gets a line at most this often (seconds).
PLAIN_INTERVAL = 5.0


@dataclass(frozen=True)
class Snapshot:
    """The run at one moment: its jobs, the calls Twilio got in the last second, the time."""

    jobs: Sequence[JobTotals]
    calls_last_second: int
    now: float

    @property
    def rows(self) -> int:
        return sum(j.totals()["rows"] for j in self.jobs)

    def count(self, outcome: str) -> int:
        return sum(j.totals()[outcome] for j in self.jobs)

    @property
    def settled(self) -> int:
        return sum(self.count(o) for o in OUTCOMES)

    @property
    def known(self) -> bool:
        """Whether every job's rows are counted (each file read and split)."""
        return all(j.rows is not None or j.state == "failed" for j in self.jobs)


def waiting_for(snapshot: Snapshot) -> str:
    """What the run waits for now, in a few words; "" while calls simply go on."""
    jobs = [j for j in snapshot.jobs if not j.settled]
    for job in jobs:
        if job.state == "pending":
            return f"waiting for the intake to read {PurePath(job.file).name}"
    for job in jobs:
        if job.rows is None:
            return f"splitting {PurePath(job.file).name} into chunks"
    waits = [j for j in jobs if j.waiting_for is not None and j.state != "paused"]
    if waits and len(waits) == len([j for j in jobs if j.state != "paused"]):
        # Every job waits: say for what, the soonest first.
        job = min(waits, key=lambda j: j.next_release_at or j.starts_at or math.inf)
        return wait_text(job.waiting_for, job.starts_at, job.next_release_at, snapshot.now)
    starts = [j.starts_at for j in jobs if j.starts_at is not None and j.state != "paused"]
    if starts and min(starts) > snapshot.now:
        return f"first call in {duration(min(starts) - snapshot.now)}"
    retrying = sum(j.retrying for j in jobs)
    if retrying:
        return f"{retrying} row{'s' if retrying != 1 else ''} retrying"
    if any(j.state == "paused" for j in jobs):
        return "a job is paused"
    return ""


def wait_text(
    waiting_for: str | None, start_at: float | None, next_release_at: float | None, now: float
) -> str:
    """What a job's rows wait for, as a person reads it: `scheduled, starts 2026-12-07 14:00
    UTC (in 2h00m)` or `waiting for send window, next release ...`; "" when nothing."""
    if waiting_for == "start" and start_at is not None:
        return f"scheduled, starts {_utc_minute(start_at)} (in {duration(start_at - now)})"
    if waiting_for is None:
        return ""
    text = f"waiting for {waiting_for}"
    if next_release_at is not None:
        text += f", next release {_utc_minute(next_release_at)}"
        text += f" (in {duration(next_release_at - now)})"
    return text


def _utc_minute(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def eta_seconds(snapshot: Snapshot, cps: int) -> float | None:
    """Seconds until the last row of every job is due; None while a file is still being read,
    or when a job's rows wait for a send window or a daily cap (only a plan tells). Rows
    retrying past their time make it 0 until they settle."""
    if not snapshot.known:
        return None
    if any(j.waiting_for not in (None, "start") for j in snapshot.jobs if not j.settled):
        return None
    last = snapshot.now
    for job in snapshot.jobs:
        if job.settled or job.starts_at is None:
            continue
        valid = job.totals()["rows"] - job.totals()["rejected"]
        last = max(last, job.starts_at + max(0, valid - 1) / cps)
    return last - snapshot.now


def plain_line(snapshot: Snapshot, cps: int) -> str:
    """The progress as one line of plain text (a log's)."""
    if not snapshot.known:
        return f"reading files ({waiting_for(snapshot)})"
    counts = ", ".join(f"{_label(o)} {snapshot.count(o)}" for o in OUTCOMES if snapshot.count(o))
    eta = eta_seconds(snapshot, cps)
    line = f"{snapshot.settled}/{snapshot.rows} rows settled"
    line += f" ({counts})" if counts else ""
    line += f"; {snapshot.calls_last_second} calls/s, ETA {_eta_text(eta)}"
    waiting = waiting_for(snapshot)
    return line + (f"; {waiting}" if waiting else "")


class RunView:
    """The run's progress on `console` (standard error): live on a terminal, plain lines
    otherwise. Use as a context manager; `step` while the stack starts, `show` as it runs."""

    def __init__(
        self,
        console: Console,
        cps: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        plain_interval: float = PLAIN_INTERVAL,
    ) -> None:
        self._console = console
        self._cps = cps
        self._clock = clock
        self._interval = plain_interval
        self._spinner = Spinner("dots")
        self._step = "starting the local stack"
        self._step_since = clock()
        self._snapshot: Snapshot | None = None
        self._finished = False
        self._last_plain: tuple[float, str] | None = None
        self._live: Live | None = None
        self._echo: _EchoOff | None = None

    def __enter__(self) -> RunView:
        if self._console.is_terminal:
            self._echo = _EchoOff.start()
            self._live = Live(
                console=self._console,
                get_renderable=self.renderable,
                refresh_per_second=8,
                redirect_stdout=False,
            )
            self._live.start()
        else:
            self._plain(f"{self._step}...", force=True)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(keep=kind is None)

    def close(self, *, keep: bool = True) -> None:
        """Stop the live display: its last state stays on the screen if `keep` (an
        interrupted run's goes, so its last line is why it ended). Later steps show nothing."""
        self._finished = True
        if self._live is not None:
            self._live.transient = not keep
            self._live.stop()
            self._live = None
        if self._echo is not None:
            self._echo.stop()
            self._echo = None

    def step(self, text: str) -> None:
        """What the run does before (or after) its rows go: starting the stack, stopping it.
        Once finished, the final progress stays on the screen."""
        if self._finished:
            return
        self._step, self._step_since, self._snapshot = text, self._clock(), None
        self._plain(f"{text}...", force=True)

    def warn(self, line: str) -> None:
        """A line of its own, above the live display."""
        self._console.print(line, markup=False, highlight=False)

    def target(self, cps: int) -> None:
        """The rate the ETA counts with, once known (a deployed stack says it per job)."""
        self._cps = cps

    def show(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        self._plain(plain_line(snapshot, self._cps))

    def finish(self, snapshot: Snapshot) -> None:
        self._snapshot, self._finished = snapshot, True
        self._plain(plain_line(snapshot, self._cps), force=True)
        if self._live is not None:
            self._live.refresh()

    def _plain(self, line: str, *, force: bool = False) -> None:
        if self._live is not None:
            return
        now = self._clock()
        if not force and self._last_plain is not None:
            at, previous = self._last_plain
            if line == previous or now - at < self._interval:
                return
        self._last_plain = (now, line)
        self._console.out(line, highlight=False)

    def renderable(self) -> RenderableType:
        """The live display: at most two lines, each cut to the console's width."""
        snapshot = self._snapshot
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        if snapshot is None or not snapshot.known:
            grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
            what = self._step if snapshot is None else waiting_for(snapshot)
            elapsed = duration(self._clock() - self._step_since)
            grid.add_row(self._spinner, Text(f"{what} ({elapsed})"))
            return grid
        for _ in range(2):
            grid.add_column(no_wrap=True)
        grid.add_column(ratio=1)
        grid.add_column(no_wrap=True, overflow="ellipsis")
        rows, settled = snapshot.rows, snapshot.settled
        eta = eta_seconds(snapshot, self._cps)
        grid.add_row(
            Text("✓") if self._finished else self._spinner,
            Text(f"{settled}/{rows}"),
            Text(f"{int(100 * settled / rows) if rows else 100:>3}%"),
            ProgressBar(total=max(rows, 1), completed=settled, width=None),
            Text(f"{snapshot.calls_last_second}/s  ETA {_eta_text(eta)}"),
        )
        counts = "  ".join(f"{_label(o)} {snapshot.count(o)}" for o in OUTCOMES)
        waiting = waiting_for(snapshot)
        # What it waits for first: the end of the line is what the width cuts.
        second = Text((f"{waiting}  · " if waiting else "") + counts, style="dim")
        second.no_wrap, second.overflow = True, "ellipsis"
        return Group(grid, second)


class _EchoOff:
    """The terminal's echo off while the live display runs: a key typed (Enter, or the ^C a
    terminal echoes for Ctrl-C) would move the cursor under the display, which then redraws
    one line off and leaves a stale copy. Ctrl-C still interrupts (ISIG is untouched)."""

    def __init__(self, fd: int, saved: list[Any]) -> None:
        self._fd, self._saved = fd, saved

    @classmethod
    def start(cls) -> _EchoOff | None:
        try:
            fd = sys.stdin.fileno()
            saved = termios.tcgetattr(fd)
        except (AttributeError, OSError, ValueError, termios.error):  # no terminal, no stdin
            return None
        quiet = list(saved)
        quiet[3] &= ~termios.ECHO
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
        return cls(fd, saved)

    def stop(self) -> None:
        with contextlib.suppress(termios.error):
            termios.tcsetattr(self._fd, termios.TCSANOW, self._saved)


def calls_in_last_second(arrivals: Sequence[float], now: float) -> int:
    return sum(1 for t in arrivals if t > now - 1.0)


def _eta_text(eta: float | None) -> str:
    return "unknown" if eta is None else duration(eta)


def _label(outcome: str) -> str:
    return outcome.replace("_", " ")


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
