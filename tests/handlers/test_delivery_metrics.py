"""The delivery metrics of POST /twilio/status: one count per message's final status, recorded
once, and nothing for a callback refused or superseded."""

from __future__ import annotations

import json
from functools import cache

import pytest
from chalice.test import Client

from chalicelib import wiring
from chalicelib.api.delivery_metrics import DELIVERY_METRICS
from chalicelib.observability import NAMESPACE, Metrics
from chalicelib.twilio.callbacks import STATUS_RANK
from tests.handlers.test_status_callback import (  # noqa: F401
    callback_form,
    client,
    deliver,
    result_item,
)
from tests.stack import ACCOUNT_SID, Stack

FINAL = {"delivered": "Delivered", "undelivered": "Undelivered", "failed": "DeliveryFailed"}


@pytest.fixture
def lines(client: Client, monkeypatch: pytest.MonkeyPatch) -> list[str]:  # noqa: F811
    """The EMF lines the route writes."""
    written: list[str] = []
    monkeypatch.setattr(wiring, "metrics", cache(lambda: Metrics("dev", sink=written.append)))
    wiring.status_callbacks.cache_clear()
    return written


def counts(lines: list[str]) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in lines:
        document = json.loads(line)
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == NAMESPACE
        assert directive["Dimensions"] == [["Stage"]]
        assert document["Stage"] == "dev"
        for metric in directive["Metrics"]:
            found[metric["Name"]] = found.get(metric["Name"], 0) + document[metric["Name"]]
    return found


def test_the_final_statuses_are_the_metrics_statuses_of_the_final_rank() -> None:
    assert DELIVERY_METRICS == FINAL
    assert all(STATUS_RANK[status] == 4 for status in DELIVERY_METRICS)


@pytest.mark.parametrize(("status", "metric"), sorted(FINAL.items()))
def test_a_final_status_is_counted_once_however_often_it_comes(
    client: Client,  # noqa: F811
    lines: list[str],
    status: str,
    metric: str,
) -> None:
    extra = {} if status == "delivered" else {"ErrorCode": "30003"}
    for _ in range(3):
        assert deliver(client, callback_form(status, **extra)).status_code == 204

    assert counts(lines) == {metric: 1}


def test_statuses_before_and_after_the_final_one_and_a_second_final_are_not_counted(
    client: Client,  # noqa: F811
    lines: list[str],
) -> None:
    for status in ("queued", "sending", "sent", "delivered", "undelivered", "failed", "read"):
        assert deliver(client, callback_form(status)).status_code == 204
    # A message canceled says nothing of delivery.
    assert deliver(client, callback_form("canceled"), row=8).status_code == 204

    assert counts(lines) == {"Delivered": 1}


def test_a_refused_callback_is_not_counted(client: Client, lines: list[str]) -> None:  # noqa: F811
    assert deliver(client, callback_form("delivered"), signature="forged").status_code == 403
    # Signed, but for a row its message was not made for (row 9 is not being called).
    assert deliver(client, callback_form("delivered"), row=9).status_code == 403

    assert counts(lines) == {}


def test_each_message_s_final_status_is_counted(
    client: Client,  # noqa: F811
    lines: list[str],
) -> None:
    deliver(client, callback_form("delivered"), row=7)
    deliver(client, callback_form("undelivered", sid="SM" + "c" * 32, ErrorCode="30005"), row=8)

    assert counts(lines) == {"Delivered": 1, "Undelivered": 1}


@pytest.mark.parametrize("status", ["failed", "completed", "busy", "no-answer"])
def test_a_call_s_final_status_is_no_delivery_metric(
    stack: Stack,
    client: Client,  # noqa: F811
    lines: list[str],
    status: str,
) -> None:
    call = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": "CA" + "d" * 32,
        "CallStatus": status,
        "From": "+15005550006",
        "To": "+14155550100",
        "ApiVersion": "2010-04-01",
    }

    assert deliver(client, call).status_code == 204

    assert result_item(stack)["delivery_status"] == status  # recorded, and yet:
    assert counts(lines) == {}
