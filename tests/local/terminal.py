"""A terminal for end-to-end tests of what a person sees: the command runs on a pseudo-terminal
of a given size (its controlling terminal, so a Ctrl-C typed there is the real thing), and its
output goes through pyte, a terminal emulator, to the screen a person would look at."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pyte

REPO = Path(__file__).resolve().parents[2]


class WrapCountingScreen(pyte.Screen):  # type: ignore[misc]
    """A screen that counts the characters written past the right edge: each one is a line
    the terminal had to wrap, i.e. a line longer than the width."""

    def __init__(self, columns: int, lines: int) -> None:
        super().__init__(columns, lines)
        self.wraps = 0

    def draw(self, data: str) -> None:
        for char in data:
            if self.cursor.x >= self.columns:
                self.wraps += 1
            super().draw(char)


class Terminal:
    """`python -m callqueue.cli ARGS` on a pty of `columns` x `lines`. Every process it starts
    inherits a tag in its environment, so those left behind can be found afterwards."""

    def __init__(self, args: list[str], *, columns: int, lines: int, cwd: Path) -> None:
        self.tag = uuid.uuid4().hex
        self.screen = WrapCountingScreen(columns, lines)
        self._stream = pyte.ByteStream(self.screen)
        self.raw = b""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
        # This checkout's code, wherever the command runs (an installed callqueue may be another).
        env["PYTHONPATH"] = str(REPO)
        env.update({"CALLQUEUE_TEST_TAG": self.tag, "TERM": "xterm-256color"})
        env.pop("NO_COLOR", None)
        env.pop("COLUMNS", None)
        env.pop("LINES", None)
        pid, fd = pty.fork()
        if pid == 0:  # the child: the pty is its controlling terminal, its group the foreground
            os.chdir(cwd)
            os.execve(sys.executable, [sys.executable, "-m", "callqueue.cli", *args], env)  # noqa: S606
        self.pid, self._fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        self.status: int | None = None

    def read_until(self, done: Callable[[Terminal], bool], timeout: float) -> bool:
        """Feed output to the screen until `done(self)` or the process ends or the timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done(self):
                return True
            ready, _, _ = select.select([self._fd], [], [], 0.2)
            if ready and not self._read():
                return done(self)
        return done(self)

    def _read(self) -> bool:
        try:
            data = os.read(self._fd, 65536)
        except OSError:  # EIO: the other side closed
            return False
        if not data:
            return False
        self.raw += data
        self._stream.feed(data)
        return True

    def ctrl_c(self) -> None:
        """Type Ctrl-C: the terminal sends SIGINT to its foreground process group."""
        os.write(self._fd, b"\x03")

    def wait(self, timeout: float) -> int:
        """The exit status, reading output until the process ends."""
        self.read_until(lambda t: False, timeout=0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                while self._read():
                    pass
                self.status = os.waitstatus_to_exitcode(status)
                os.close(self._fd)
                return self.status
            self.read_until(lambda t: False, timeout=0.2)
        os.kill(self.pid, signal.SIGKILL)
        raise TimeoutError(f"still running after {timeout} s")

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def processes(self) -> list[int]:
        """Processes alive now that this command started (by the tag in their environment)."""
        return tagged_processes(self.tag)


def tagged_processes(tag: str) -> list[int]:
    needle = f"CALLQUEUE_TEST_TAG={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found
