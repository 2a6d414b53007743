"""How long `callqueue run` waits with nothing settling before it gives up: never shorter than the
quiet spell a row may rightly have. A release window with nothing due, then a call whose answer
was lost waits out the in-doubt time before its look-up, and a look-up that found no slot comes
back after the send queue's visibility timeout. A fixed window + 120 s was shorter than that
chain on a loaded machine, and a faulted run gave up with a row still settling."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from callqueue.cli.local import _options
from callqueue.cli.parser import build_parser
from callqueue.local.options import Options


def quiet_chain(options: Options) -> float:
    """The longest spell with nothing settling and nothing reaching Twilio, as the stack is set
    up: read from what the handlers and the queues are given, not from the limit's formula."""
    handlers = options.handler_settings("http://127.0.0.1:1", "callqueue/twilio")
    queues = options.stack_parameters()
    return (
        float(handlers["WINDOW_SECONDS"])
        + float(handlers["IN_DOUBT_AFTER_SECONDS"])
        + float(queues["SendVisibilityTimeout"])
    )


@given(
    window=st.integers(1, 900),
    in_doubt=st.floats(1.0, 900.0),
    visibility=st.integers(1, 43_200),
)
def test_the_default_limit_outlasts_a_row_in_doubt(
    window: int, in_doubt: float, visibility: int
) -> None:
    options = Options(
        window_seconds=window, in_doubt_after_seconds=in_doubt, visibility_timeout=visibility
    )
    assert options.stall_limit_seconds > quiet_chain(options)
    # A busy machine's lateness on top: a minute at least.
    assert options.stall_limit_seconds - quiet_chain(options) >= 60 - 1e-9


def test_a_short_window_run_waits_past_the_in_doubt_chain() -> None:
    """The run a faulted test makes (a 3-s window): 60 s in doubt plus 45 s before a redelivery
    was longer than the old 123 s with a loaded machine's lateness."""
    args = build_parser().parse_args(["run", "rows.csv", "--window", "3"])
    options = _options(args)
    assert args.timeout is None
    assert options.stall_limit_seconds >= 3 + 60 + 45 + 60
