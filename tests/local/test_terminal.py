"""End to end: what a person sees of `callqueue run` and `callqueue up` on a terminal of 80 and
120 columns (a pseudo-terminal read through a terminal emulator), and how Ctrl-C and SIGTERM
end them: quietly, with every process they started gone."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from tests.local.terminal import Terminal

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SAMPLE = str(REPO / "samples" / "sample.csv")  # 300 rows, 6 of them rejected
BAR = re.compile(r"(\d+)/300\s+\d+%")


def bars(screen_text: str) -> list[int]:
    return [int(m[1]) for m in BAR.finditer(screen_text)]


@pytest.mark.parametrize("columns", [80, 120])
def test_run_on_a_terminal_fits_its_width_and_leaves_one_final_bar(
    columns: int, tmp_path: Path
) -> None:
    terminal = Terminal(
        ["run", SAMPLE, "--delivery-wait", "0", "--cps", "100", "--window", "3"],
        columns=columns,
        lines=120,
        cwd=tmp_path,
    )
    seen: list[str] = []
    settled: list[int] = []

    def watch(t: Terminal) -> bool:
        text = t.text()
        if not seen or seen[-1] != text:
            seen.append(text)
            settled.extend(bars(text)[-1:])
        return False

    terminal.read_until(watch, timeout=240)
    status = terminal.wait(timeout=30)
    screen = terminal.text()

    assert status == 0, screen
    assert terminal.screen.wraps == 0, "a line was longer than the terminal"
    assert b"Traceback" not in terminal.raw
    # What it waited for, as it waited.
    everything = "\n".join(seen)
    assert "starting emulated AWS (moto)" in everything
    assert "first call in" in everything
    # It advanced, never back, and left one bar: the final one.
    assert settled == sorted(settled) and len(set(settled)) >= 3, settled
    assert bars(screen) == [300]
    # The summary: full names, codes with their meaning, the first rejected rows.
    for name in ("suppressed", "dead lettered", "unaccounted", "rejected", "failed"):
        assert re.search(rf"^ {name} +\d+ ", screen, re.MULTILINE), name
    assert "invalid 'From' number (caller ID)" in screen
    assert "rejected rows of sample.csv (first 5 of 6):" in screen
    assert "row 12: To: +1555 is not a valid phone number" in screen


def test_ctrl_c_stops_a_run_quietly_with_130_and_every_process(tmp_path: Path) -> None:
    terminal = Terminal(
        ["run", SAMPLE, "--delivery-wait", "0", "--cps", "20", "--window", "3"],
        columns=80,
        lines=40,
        cwd=tmp_path,
    )
    assert terminal.read_until(lambda t: "first call in" in t.text(), timeout=120), t_text(terminal)
    # moto, the emulator and the sender's workers, besides the command itself.
    assert len(terminal.processes()) >= 4

    terminal.ctrl_c()
    status = terminal.wait(timeout=60)

    assert status == 130
    assert b"Traceback" not in terminal.raw
    assert terminal.text().strip().splitlines()[-1] == "callqueue: interrupted"
    assert terminal.screen.wraps == 0
    assert terminal.processes() == []


def test_sigterm_stops_up_and_its_chalice_local_with_143(tmp_path: Path) -> None:
    terminal = Terminal(["up"], columns=120, lines=60, cwd=tmp_path)
    assert terminal.read_until(lambda t: "Ctrl-C stops" in t.text(), timeout=180), t_text(terminal)
    children = terminal.processes()
    assert any(b"chalice" in command_line(pid) for pid in children)

    os.kill(terminal.pid, signal.SIGTERM)
    status = terminal.wait(timeout=60)

    assert status == 143
    assert b"Traceback" not in terminal.raw
    assert terminal.processes() == []


def command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def t_text(terminal: Terminal) -> str:
    return terminal.text()
