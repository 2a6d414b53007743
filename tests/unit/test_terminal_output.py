"""What the command shows a person, rendered at fixed widths: the live progress, its plain form
off a terminal, the summary; and how the command reads its arguments and ends on a mistake or a
signal. (tests/local/test_terminal.py runs the real command on a pseudo-terminal.)"""

from __future__ import annotations

import io
import os
import re
import signal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from callqueue.cli import main
from callqueue.cli.exits import EXIT_INTERRUPTED, EXIT_TERMINATED, StopSignals
from callqueue.cli.parser import build_parser
from callqueue.cli.progress import RunView, Snapshot, eta_seconds, plain_line, waiting_for
from callqueue.cli.summary import REJECTS_SHOWN, print_summary
from callqueue.cli.twilio_codes import NAMES, name_of
from callqueue.report import OUTCOMES, JobTotals, build_report

REPO = Path(__file__).resolve().parents[2]
NOW = 1_000_000.0


def job(
    state: str = "running",
    rows: int | None = 300,
    starts_at: float | None = NOW - 5,
    retrying: int = 0,
    file: str = "/data/calls.csv",
    **counts: int,
) -> JobTotals:
    return JobTotals("job-1", file, state, rows, counts, starts_at=starts_at, retrying=retrying)


def terminal(width: int) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=width, force_terminal=True, color_system=None), out


def rendered_lines(view: RunView, width: int) -> list[str]:
    console, out = terminal(width)
    console.print(view.renderable())
    return out.getvalue().splitlines()


# -- what the run waits for ---------------------------------------------------------------------


def test_waiting_for_names_each_thing_a_run_waits_on_in_order() -> None:
    assert waiting_for(Snapshot([job(state="pending", rows=None)], 0, NOW)) == (
        "waiting for the intake to read calls.csv"
    )
    assert waiting_for(Snapshot([job(state="splitting", rows=None)], 0, NOW)) == (
        "splitting calls.csv into chunks"
    )
    assert waiting_for(Snapshot([job(starts_at=NOW + 8.4)], 0, NOW)) == "first call in 8s"
    assert waiting_for(Snapshot([job(retrying=3)], 0, NOW)) == "3 rows retrying"
    assert waiting_for(Snapshot([job(retrying=1)], 0, NOW)) == "1 row retrying"
    assert waiting_for(Snapshot([job(state="paused")], 0, NOW)) == "a job is paused"
    assert waiting_for(Snapshot([job(sent=100)], 50, NOW)) == ""


def test_a_settled_job_waits_for_nothing() -> None:
    done = job(rows=2, sent=2, retrying=0, starts_at=NOW + 100)
    assert waiting_for(Snapshot([done], 0, NOW)) == ""


def test_eta_counts_the_release_lead_and_the_rows_still_due() -> None:
    # 300 rows, 6 rejected: the last of 294 valid rows is due 293/50 s after the start.
    waiting = job(starts_at=NOW + 10, rejected=6)
    assert eta_seconds(Snapshot([waiting], 0, NOW), 50) == pytest.approx(10 + 293 / 50)
    assert eta_seconds(Snapshot([job(state="splitting", rows=None)], 0, NOW), 50) is None
    late = job(starts_at=NOW - 600, sent=10)
    assert eta_seconds(Snapshot([late], 0, NOW), 50) == 0


# -- the live display on a terminal ----------------------------------------------------------


@given(
    width=st.integers(min_value=20, max_value=240),
    counts=st.fixed_dictionaries({o: st.integers(0, 10**7) for o in OUTCOMES}),
    retrying=st.integers(0, 10**6),
    lead=st.floats(-1e6, 1e6),
    name=st.text(min_size=1, max_size=200).filter(lambda s: "/" not in s and "\0" not in s),
)
def test_the_live_display_never_exceeds_the_terminal_width(
    width: int, counts: dict[str, int], retrying: int, lead: float, name: str
) -> None:
    rows = sum(counts.values()) + 5
    view = RunView(Console(file=io.StringIO(), width=width), 50, clock=lambda: 0.0)
    view.show(
        Snapshot([job(rows=rows, starts_at=NOW + lead, retrying=retrying, file=name, **counts)],
                 1234, NOW)
    )  # fmt: skip
    assert all(len(line) <= width for line in rendered_lines(view, width))


@pytest.mark.parametrize("width", [80, 120])
def test_the_live_display_says_what_it_waits_for_and_counts_each_outcome(width: int) -> None:
    view = RunView(Console(file=io.StringIO(), width=width), 50, clock=lambda: 0.0)
    assert "starting the local stack" in rendered_lines(view, width)[0]
    view.step("deploying the stack into moto")
    assert "deploying the stack into moto" in rendered_lines(view, width)[0]
    view.show(Snapshot([job(starts_at=NOW + 7, rejected=6)], 0, NOW))
    bar, detail = rendered_lines(view, width)
    assert "6/300" in bar and "ETA 13s" in bar
    assert detail.startswith("first call in 7s")
    if width >= 120:
        assert all(o.replace("_", " ") in detail for o in OUTCOMES)


def test_after_finishing_the_display_keeps_the_final_counts_while_the_stack_stops() -> None:
    view = RunView(Console(file=io.StringIO(), width=80), 50, clock=lambda: 0.0)
    view.finish(Snapshot([job(rows=3, sent=3)], 0, NOW))
    view.step("stopping the local stack")
    assert "3/3" in rendered_lines(view, 80)[0]


# -- plain lines off a terminal ----------------------------------------------------------------


def test_off_a_terminal_lines_are_plain_and_at_most_one_per_interval() -> None:
    now = [0.0]
    out = io.StringIO()
    console = Console(file=out, width=80)  # a StringIO is no terminal
    with RunView(console, 50, clock=lambda: now[0], plain_interval=5.0) as view:
        for second in range(20):
            now[0] = float(second)
            view.show(Snapshot([job(sent=second * 10)], 10, NOW))
        view.show(Snapshot([job(sent=190)], 10, NOW))  # unchanged: nothing more
        view.finish(Snapshot([job(rows=300, sent=300)], 0, NOW))
    lines = out.getvalue().splitlines()
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()
    assert lines[0] == "starting the local stack..."
    progress = lines[1:-1]
    # The first line (t=0) was the start's; then one at 5, 10 and 15 s.
    assert [re.match(r"(\d+)/300", line)[1] for line in progress] == ["50", "100", "150"]  # type: ignore[index]
    assert lines[-1].startswith("300/300 rows settled (sent 300)")


def test_a_plain_line_says_what_the_run_waits_for() -> None:
    line = plain_line(Snapshot([job(starts_at=NOW + 9, rejected=6)], 0, NOW), 50)
    assert line == "6/300 rows settled (rejected 6); 0 calls/s, ETA 15s; first call in 9s"


# -- the summary -------------------------------------------------------------------------------


def report_of(*jobs: JobTotals, codes: dict[str, int] | None = None) -> dict[str, object]:
    return build_report(
        jobs,
        error_codes=codes or {},
        arrivals=[1.0, 1.5],
        first_attempts=[1.0, 1.5],
        lags=[0.1],
        target_cps=50,
        aws_requests={},
        duration_seconds=12.3,
    )


@pytest.mark.parametrize("width", [60, 80, 120])
def test_the_summary_fits_the_width_with_full_names_codes_and_rejects(width: int) -> None:
    first = JobTotals(
        "001-a-very-long-file-name-of-calls-1234567890ab",
        "/data/a-very-long-file-name-of-calls.csv",
        "completed",
        300,
        {"rejected": 8, "sent": 260, "failed": 20, "suppressed": 10, "dead_lettered": 2},
    )
    second = JobTotals("002-b", "/data/b.jsonl", "failed", 0, {}, error="the file is empty")
    report = report_of(first, second, codes={"21610": 10, "21211": 9, "99999": 1})
    rejects = {first.job_id: [(n, f"reason {n}: " + "x" * 90) for n in range(8)]}
    console, out = terminal(width)

    print_summary(console, report, rejects, None)

    text = out.getvalue()
    assert all(len(line) <= width for line in text.splitlines())
    flat = " ".join(text.split())
    for name in ("rejected", "suppressed", "sent", "failed", "unknown", "dead lettered"):
        assert re.search(rf"\b{name}\b", flat), name
    assert "unaccounted" in flat and "total" in flat
    assert "recipient unsubscribed (replied STOP)" in flat
    assert "99999 1 see twilio.com/docs/api/errors" in flat
    assert f"(first {REJECTS_SHOWN} of 8)" in flat
    assert "row 4: reason 4" in flat and "row 5:" not in flat
    assert "pass --rejects FILE" in flat
    assert "failed: the file is empty" in flat


def test_the_summary_names_the_file_that_holds_every_rejected_row(tmp_path: Path) -> None:
    one = JobTotals("j", "a.csv", "completed", 2, {"rejected": 1, "sent": 1})
    console, out = terminal(80)
    print_summary(console, report_of(one), {"j": [(3, "bad")]}, tmp_path / "rejects.csv")
    assert out.getvalue().endswith(
        f"all 1 rejected rows with their reasons:\n  {tmp_path / 'rejects.csv'}\n"
    )


def test_every_error_code_the_emulator_answers_with_has_a_name() -> None:
    source = "".join(p.read_text() for p in (REPO / "callqueue/local/emulator").glob("*.py"))
    raised = set(re.findall(r"_ApiError\(\s*\d+,\s*(\d+)", source))
    raised |= set(re.findall(r"\((\d{5}), [f\"']", source))  # the magic numbers' tables
    assert raised, "the pattern no longer finds the emulator's codes"
    assert raised <= set(NAMES), sorted(raised - set(NAMES))
    assert name_of(21211) == name_of("21211") == "invalid 'To' number"


# -- arguments, mistakes and signals -------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["-v", "plan", "f.csv"],
        ["plan", "-v", "f.csv"],
        ["plan", "f.csv", "--verbose"],
        ["suppression", "list", "-v"],
        ["infra", "destroy", "--stage", "dev", "-v"],
    ],
)
def test_verbose_is_taken_anywhere(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).verbose is True


def test_verbose_is_off_unless_given() -> None:
    assert build_parser().parse_args(["plan", "f.csv"]).verbose is False


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"callqueue {version('callqueue')}\n"


def test_version_says_when_callqueue_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    from callqueue.cli.parser import version

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert version() == "(not installed: run from a source tree)"


def test_the_bash_completion_script_is_valid_bash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess

    assert main(["completion", "bash"]) == 0
    script = tmp_path / "callqueue.bash"
    script.write_text(capsys.readouterr().out)
    completed = "; ".join(
        [
            f"source {script}",
            "COMP_WORDS=(callqueue sup)",
            "COMP_CWORD=1",
            'COMP_LINE="callqueue sup"',
            "COMP_POINT=${#COMP_LINE}",
            "_shtab_callqueue",
            'echo "${COMPREPLY[@]}"',
        ]
    )
    result = subprocess.run(["bash", "-c", completed], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["suppression"]


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_scripts_know_the_commands_and_their_options(
    shell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    for word in ("generate", "plan", "run", "suppression", "--window", "--rejects"):
        assert word in script
    assert ("_shtab_compgen_files" if shell == "bash" else "_files") in script


def test_a_directory_is_named_as_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"callqueue: {tmp_path}: is a directory; name the files in it\n"
    assert main(["run", str(tmp_path / "nope.csv")]) == 2
    assert capsys.readouterr().err == f"callqueue: {tmp_path / 'nope.csv'}: no such file\n"


@pytest.mark.parametrize(
    ("argv", "variable"),
    [
        (["suppression", "list"], "SUPPRESSION_TABLE"),
        (["suppression", "add", "+14155550100"], "SUPPRESSION_TABLE"),
        (["dlq", "list"], "DEAD_LETTER_QUEUE"),
        (["dlq", "redrive"], "DEAD_LETTER_QUEUE"),
        (["resume", "job-1"], "JOBS_TABLE"),
    ],
)
def test_commands_on_a_stack_say_in_one_line_that_there_is_none(
    argv: list[str],
    variable: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("CALLQUEUE_STAGE", variable):
        monkeypatch.delenv(name, raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and variable in err
    if argv[0] == "resume":  # it also works through a deployed stage's REST API
        assert err.startswith("callqueue: name the stack: --stage STAGE, --api-url URL")
    else:
        assert err.startswith(f"callqueue: no stack: {variable} is not set")


def test_every_bad_setting_is_a_line_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RATE_HEADROOM", "1%")
    monkeypatch.setenv("CPS", "many")
    monkeypatch.setenv("SUPPRESSION_TABLE", "t")
    from chalicelib import wiring

    wiring.settings.cache_clear()
    try:
        assert main(["suppression", "list"]) == 2
    finally:
        wiring.settings.cache_clear()
    lines = capsys.readouterr().err.splitlines()
    assert "Traceback" not in "".join(lines)
    assert any("RATE_HEADROOM" in line and "'1%'" in line for line in lines)
    assert any("CPS" in line and "'many'" in line for line in lines)
    assert all(line.startswith("callqueue: ") for line in lines)


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGINT, EXIT_INTERRUPTED), (signal.SIGTERM, EXIT_TERMINATED)]
)
def test_a_stop_signal_unwinds_once_and_says_which_it_was(signum: int, status: int) -> None:
    before = signal.getsignal(signum)
    cleaned = []
    with StopSignals() as stop:
        with pytest.raises(KeyboardInterrupt):
            try:
                os.kill(os.getpid(), signum)
                signal.sigtimedwait([], 0)  # let the handler run
            finally:
                # A second signal while cleaning up is ignored, not a second interrupt.
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGTERM)
                cleaned.append(True)
        assert stop.exit_status == status
    assert cleaned == [True]
    assert signal.getsignal(signum) == before


def test_the_tally_counts_a_row_retrying_until_its_final_outcome_whatever_the_order() -> None:
    from callqueue.local.outcomes import Tally

    tally = Tally()
    for row in (1, 2, 3):
        tally.envelope({"job_id": "j", "row": row, "attempt": 1, "outcome": "retrying"})
    tally.envelope({"job_id": "other", "row": 1, "attempt": 1, "outcome": "retrying"})
    assert tally.retrying_rows("j") == 3
    tally.envelope({"job_id": "j", "row": 1, "attempt": 2, "outcome": "sent"})
    # An attempt's "retrying" published after the row's final outcome (SNS keeps no order).
    tally.envelope({"job_id": "j", "row": 1, "attempt": 1, "outcome": "retrying"})
    assert tally.retrying_rows("j") == 2
    assert tally.snapshot().retrying_rows("j") == 2
