"""A call's final status callback at any point relative to the sender's recording of the call
(its ledger outcome) and the results sink's writes: a call that asks only for `completed` gets
no earlier callback, and a busy call's comes within ~100 ms of its creation, before the sender
may have written anything. Every ordering is tried: the status is kept, and a callback of
another call for the row stays refused. The claim, the outcome, the result and the status are
one item; the sink leaves an envelope the sender recorded alone, and one without the mark (from
before it) changes nothing of the claim. Against moto and chalice.test.Client."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import permutations
from pathlib import Path

import pytest
from chalice.test import Client

from chalicelib import wiring
from chalicelib.core.envelope import ResponseEnvelope
from chalicelib.core.records import TwilioResult
from tests.handlers.test_call_status_callback import CALL_SID, JOB, TO, call_form, item, post
from tests.handlers.test_status_callback import PUBLIC_URL, ledger_item
from tests.stack import Stack

ROW = 7
OTHER_SID = "CA" + "e" * 32
# What can happen to a row once its claim is made and its call created. The sender writes the
# ledger outcome before it publishes the response, so the sink writes after it; the sink may
# be given its batch again; a callback of another call (a row elsewhere pointing its
# StatusCallback at this row's URL) comes after the row's own.
STEPS = ("callback", "ledger", "results", "results_again", "other_call")
BEFORE = (("ledger", "results"), ("results", "results_again"), ("callback", "other_call"))
ORDERINGS = sorted(
    {
        order
        for order in permutations(STEPS)
        if all(order.index(a) < order.index(b) for a, b in BEFORE)
    }
)
# Every final status takes one path; a busy call's comes soonest, a completed one's carries more.
FINALS = {"busy": {}, "completed": {"CallDuration": "42", "AnsweredBy": "human"}}


@pytest.fixture
def client(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    import app as app_module

    monkeypatch.setenv("STATUS_CALLBACK_URL", PUBLIC_URL)
    wiring.reset()
    # The sender claims the row before it calls; Twilio calls back only once the call exists.
    wiring.ledger().claim(JOB, ROW, 1)
    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


def envelope(*, recorded: bool = True) -> ResponseEnvelope:
    """The call's response as the sender publishes it (marked `recorded`: its outcome write)."""
    return ResponseEnvelope(
        job_id=JOB,
        row=ROW,
        api="calls",
        attempt=1,
        outcome="sent",
        request={"To": TO},
        result=TwilioResult(201, {"sid": CALL_SID, "status": "queued"}, {}, 1.0, 1.1),
        due_at=1.0,
        recorded=recorded,
    )


def record_in_ledger() -> None:
    """As the sender records an outcome: LedgerWrites, flushed before the envelope is published."""
    writes = wiring.ledger().writes()
    writes.completed(JOB, ROW, 1, envelope().to_json())
    writes.flush()


def test_orderings_cover_every_position_of_the_callback() -> None:
    assert len(ORDERINGS) == 10
    assert {o.index("callback") for o in ORDERINGS} == {0, 1, 2, 3}


@pytest.mark.parametrize("recorded", [True, False], ids=["marked", "unmarked"])
@pytest.mark.parametrize("status", sorted(FINALS))
@pytest.mark.parametrize("order", ORDERINGS, ids="-".join)
def test_a_final_call_status_is_kept_whenever_it_arrives(
    stack: Stack, client: Client, order: tuple[str, ...], status: str, recorded: bool
) -> None:
    answers: dict[str, int] = {}
    for step in order:
        if step == "callback":
            answers[step] = post(client, call_form(status, **FINALS[status])).status_code
        elif step == "other_call":
            forged = call_form("completed", sid=OTHER_SID, CallDuration="1")
            answers[step] = post(client, forged).status_code
        elif step == "ledger":
            record_in_ledger()
        else:
            written = wiring.results().record([envelope(recorded=recorded)])
            assert written == (0 if recorded else 1)

    assert answers == {"callback": 204, "other_call": 403}
    stored = item(stack, ROW)
    assert (stored["outcome"], stored["sid"]) == ("sent", CALL_SID)
    assert stored["delivery_status"] == status
    assert stored.get("call_duration") == FINALS[status].get("CallDuration")
    assert stored.get("answered_by") == FINALS[status].get("AnsweredBy")
    ledger = ledger_item(stack, JOB, ROW)
    assert (ledger["sid"], ledger["state"]) == (CALL_SID, "done")
    again = wiring.ledger().claim(JOB, ROW, 1)
    assert (again.verdict, again.envelope) == ("done", envelope().to_json())
    [row] = wiring.results().outcomes(JOB)
    assert (row.outcome, row.delivery_status) == ("sent", status)
    tally = wiring.results().progress(JOB, since=0.0).delivery
    assert tally.finals["calls"] == {status: 1}
