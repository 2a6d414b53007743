"""The local runtime's processes (moto, the Twilio emulator, the sender's workers), both sides of
one convention: a module run with `python -m`, which prints a line "READY ..." on its standard
output once it serves, and stops when its standard input closes (so it stops too when the
runtime dies).

Each child runs in a session of its own: a Ctrl-C at the terminal (SIGINT to the foreground
process group) reaches the runtime alone, which then stops its children in order; the children
never see it, so they print no traceback of their own."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

STOP_TIMEOUT_SECONDS = 10


def spawn(module: str, *args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    """Start `python -m module args...` with this interpreter, its standard streams piped, in
    a session of its own. What it writes to standard error is written on by this process."""
    process = subprocess.Popen(  # noqa: S603 - our own module, no shell
        [sys.executable, "-m", module, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        start_new_session=True,
    )
    threading.Thread(target=_forward, args=(process.stderr,), daemon=True).start()
    return process


def _forward(lines: IO[str]) -> None:
    """Each line to this process's standard error as it is at the time: under a live progress
    display, a stream that prints it above the display, where the child's own writes to the
    terminal would cut through it."""
    for line in lines:
        sys.stderr.write(line)
        sys.stderr.flush()


def ready(process: subprocess.Popen[str]) -> list[str] | None:
    """What the process said after READY once serving; None if it said anything else (or
    exited without a word)."""
    assert process.stdout is not None  # noqa: S101 - piped by spawn
    line = process.stdout.readline().split()
    return line[1:] if line[:1] == ["READY"] else None


def stop(process: subprocess.Popen[str]) -> None:
    """Close its standard input and wait for it to exit; kill it if it has not within the
    timeout (a request still in flight: nothing more is wanted of it)."""
    try:
        process.communicate(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


def stop_all(processes: Sequence[subprocess.Popen[str]]) -> None:
    """As `stop`, for processes that stop side by side: each told first, then each waited for."""
    for process in processes:
        if process.stdin is not None:
            process.stdin.close()
    for process in processes:
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def serve_until_stdin_closes(*announced: object) -> None:
    """The child's side: say READY with what its parent needs to know, then wait for the parent
    to close its standard input."""
    print("READY", *announced, flush=True)
    sys.stdin.read()
