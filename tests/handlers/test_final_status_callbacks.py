"""Status callbacks write only final statuses: whatever Twilio sends (repeats, out of order,
non-final after final, unknown statuses), a row stores its first final status (then `read` for
a WhatsApp message) and the results table gets one write request a final callback, none for the
others."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib import wiring
from chalicelib.core.delivery import FINAL_STATUSES
from chalicelib.twilio.callbacks import CALL_STATUS_RANK, STATUS_RANK
from tests.handlers.test_call_status_callback import call_form
from tests.handlers.test_status_callback import PUBLIC_URL, callback_form, deliver, result_item
from tests.stack import Stack

JOB = "final-0123456789ab"
UNKNOWN = ("partially_delivered", "receiving", "answered", "")
_rows = itertools.count(1)


@pytest.fixture
def client(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    import app as app_module

    monkeypatch.setenv("STATUS_CALLBACK_URL", PUBLIC_URL)
    wiring.reset()
    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


@pytest.fixture
def results_writes(stack: Stack, client: Client) -> list[str]:
    """Each write request the results table makes for a delivery status, by operation (counted
    after the client is built, so the wiring's DynamoDB client is the one the route uses). The
    call ledger's writes on the same item are not among them: the row's claim, and the binding
    of a row still calling to the first SID a callback brings (CallLedger.bind_callback, once a
    row)."""
    table = stack.env["RESULTS_TABLE"]
    writes: list[str] = []

    def count(params: dict[str, Any], model: Any, **_: Any) -> None:
        claim = "state" in params.get("Item", {})
        binding = params.get("UpdateExpression") == "SET callback_sid = :sid"
        if params.get("TableName") == table and not (claim or binding):
            writes.append(model.name)

    events = wiring.client("dynamodb").meta.events
    for operation in ("PutItem", "UpdateItem", "BatchWriteItem", "TransactWriteItems"):
        events.register(f"before-parameter-build.dynamodb.{operation}", count)
    return writes


def form_of(api: str, status: str) -> dict[str, str]:
    return call_form(status) if api == "calls" else callback_form(status)


def expected(api: str, statuses: list[str]) -> tuple[str | None, int]:
    """The status a row should keep from `statuses` in arrival order, and the write requests:
    the first final status stands (a message's `read` after it replaces `delivered`'s rank)."""
    ranks = CALL_STATUS_RANK if api == "calls" else STATUS_RANK
    finals = set(FINAL_STATUSES[api]) | ({"read"} if api == "messages" else set())
    kept: str | None = None
    for status in statuses:
        if status in finals and (kept is None or ranks[status] > ranks[kept]):
            kept = status
    return kept, sum(status in finals for status in statuses)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    api=st.sampled_from(["messages", "calls"]),
    data=st.data(),
)
def test_any_callback_sequence_stores_its_first_final_status_with_one_write_a_final_callback(
    stack: Stack, client: Client, results_writes: list[str], api: str, data: st.DataObject
) -> None:
    ranks = CALL_STATUS_RANK if api == "calls" else STATUS_RANK
    statuses = data.draw(st.lists(st.sampled_from([*ranks, *UNKNOWN]), max_size=10))
    row = next(_rows)
    wiring.ledger().claim(JOB, row, 1)
    before = len(results_writes)

    codes = [deliver(client, form_of(api, s), row=row, job=JOB).status_code for s in statuses]

    known = [s for s in statuses if s in ranks]
    assert codes == [204 if s in ranks else 400 for s in statuses]
    kept, writes = expected(api, known)
    assert result_item(stack, row, job=JOB).get("delivery_status") == kept
    assert results_writes[before:] == ["UpdateItem"] * writes


@pytest.mark.parametrize(
    ("api", "statuses"),
    [
        ("messages", ["queued", "sending", "sent"]),
        ("calls", ["queued", "initiated", "ringing", "in-progress"]),
    ],
)
def test_non_final_statuses_alone_write_nothing_and_leave_the_row_pending(
    stack: Stack, client: Client, results_writes: list[str], api: str, statuses: list[str]
) -> None:
    wiring.ledger().claim(JOB, 1, 1)
    for status in statuses:
        assert deliver(client, form_of(api, status), row=1, job=JOB).status_code == 204

    # result_item: the row's item holds only its claim (and the SID bound to it).
    assert results_writes == [] and result_item(stack, 1, job=JOB) == {}


def test_a_typical_message_costs_one_write_and_a_repeat_of_its_final_status_changes_nothing(
    stack: Stack, client: Client, results_writes: list[str]
) -> None:
    wiring.ledger().claim(JOB, 1, 1)
    for status in ("queued", "sent", "delivered"):
        deliver(client, callback_form(status), row=1, job=JOB)
    assert results_writes == ["UpdateItem"]
    first = result_item(stack, 1, job=JOB)

    for status in ("sent", "undelivered", "delivered"):
        deliver(client, callback_form(status, ErrorCode="30003"), row=1, job=JOB)

    assert result_item(stack, 1, job=JOB) == first
    assert first["delivery_status"] == "delivered" and "delivery_error_code" not in first


def test_a_non_final_callback_for_another_rows_message_is_still_refused(
    stack: Stack, client: Client, results_writes: list[str]
) -> None:
    wiring.ledger().claim(JOB, 1, 1)
    assert deliver(client, callback_form("sent"), row=1, job=JOB).status_code == 204
    other = callback_form("sent", sid="SM" + "b" * 32)

    assert deliver(client, other, row=1, job=JOB).status_code == 403
    assert deliver(client, callback_form("sent"), row=1, job=JOB, signature="x").status_code == 403
    assert deliver(client, callback_form("queued"), row=2, job=JOB).status_code == 403
    assert results_writes == []
