"""Status callbacks through the callback function's Lambda function URL
(chalicelib.api.callback_url), invoked as Lambda invokes it: hostile events, signatures over the
function's own URL only, and the same answers and writes as the REST route for the same
callback."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from chalice.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib import wiring
from chalicelib.twilio.callbacks import CALL_STATUS_RANK, STATUS_RANK, status_callback_url
from tests.handlers.test_call_status_callback import call_form
from tests.handlers.test_status_callback import (
    PUBLIC_URL,
    callback_form,
    deliver,
    result_item,
    signed,
)
from tests.stack import Stack

DOMAIN = "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws"
FUNCTION_URL = f"https://{DOMAIN}/"
JOB = "furl-0123456789ab"
FUNCTION = "status_callback_url"
UNKNOWN = ("partially_delivered", "answered", "")
_rows = itertools.count(100)


@pytest.fixture
def client(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    import app as app_module

    # The REST route's URL: the function URL's callbacks must not depend on it.
    monkeypatch.setenv("STATUS_CALLBACK_URL", PUBLIC_URL)
    wiring.reset()
    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


def url_event(
    body: bytes,
    *,
    query: str,
    headers: dict[str, str],
    method: str = "POST",
    base64_body: bool = False,
    path: str = "/",
) -> dict[str, Any]:
    """A function URL's event as Lambda gives it (payload format 2.0)."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {
            "host": DOMAIN,
            "x-forwarded-proto": "https",
            "x-forwarded-port": "443",
            "user-agent": "TwilioProxy/1.1",
            **{k.lower(): v for k, v in headers.items()},
        },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": DOMAIN.split(".", maxsplit=1)[0],
            "domainName": DOMAIN,
            "domainPrefix": DOMAIN.split(".", maxsplit=1)[0],
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1"},
            "routeKey": "$default",
            "stage": "$default",
        },
        "body": base64.b64encode(body).decode() if base64_body else body.decode(),
        "isBase64Encoded": base64_body,
    }


def callback_event(
    form: dict[str, str],
    *,
    row: int,
    job: str = JOB,
    signed_url: str | None = None,
    signature: str | None = "sign",
    **options: Any,
) -> dict[str, Any]:
    """A signed callback for `row`, sent to the function URL; `signed_url`: the URL Twilio
    signed, when not that one."""
    url = status_callback_url(FUNCTION_URL, job, row)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature == "sign":
        headers["X-Twilio-Signature"] = signed(signed_url or url, form)
    elif signature is not None:
        headers["X-Twilio-Signature"] = signature
    query = url.split("?", 1)[1]
    return url_event(urlencode(form).encode(), query=query, headers=headers, **options)


def invoke(client: Client, event: Any) -> dict[str, Any]:
    payload: dict[str, Any] = client.lambda_.invoke(FUNCTION, event).payload
    return payload


def claimed(job: str = JOB) -> int:
    row = next(_rows)
    wiring.ledger().claim(job, row, 1)
    return row


@pytest.mark.parametrize("base64_body", [False, True], ids=["plain", "base64"])
def test_a_signed_callback_through_the_function_url_is_recorded(
    stack: Stack, client: Client, base64_body: bool
) -> None:
    row = claimed()
    event = callback_event(callback_form("delivered"), row=row, base64_body=base64_body)

    response = invoke(client, event)

    assert response == {"statusCode": 204, "headers": {}, "body": ""}
    assert result_item(stack, row, job=JOB)["delivery_status"] == "delivered"


def test_a_signature_over_the_rest_routes_url_is_refused_at_the_function_url(
    stack: Stack, client: Client
) -> None:
    row = claimed()
    rest_url = status_callback_url(PUBLIC_URL, JOB, row)
    event = callback_event(callback_form("delivered"), row=row, signed_url=rest_url)

    assert invoke(client, event)["statusCode"] == 403
    assert result_item(stack, row, job=JOB) == {}


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda e: e["headers"].pop("x-twilio-signature"), id="no-signature"),
        pytest.param(lambda e: e["headers"].update({"x-twilio-signature": "Zm9v"}), id="forged"),
        pytest.param(lambda e: e.update({"rawQueryString": e["rawQueryString"] + "1"}), id="row"),
        pytest.param(lambda e: e.update({"rawPath": "/other"}), id="path"),
        pytest.param(lambda e: e["requestContext"].update({"domainName": "x.on.aws"}), id="host"),
        pytest.param(lambda e: e["headers"].update({"x-forwarded-proto": "http"}), id="scheme"),
        pytest.param(lambda e: e.update({"body": e["body"] + "&ErrorCode=30003"}), id="body"),
    ],
)
def test_a_callback_changed_after_signing_is_refused(
    stack: Stack, client: Client, change: Any
) -> None:
    row = claimed()
    event = callback_event(callback_form("delivered"), row=row)
    change(event)

    assert invoke(client, event)["statusCode"] == 403
    assert result_item(stack, row, job=JOB) == {}


def test_extra_headers_header_case_and_extra_query_parameters_signed_by_twilio_are_accepted(
    stack: Stack, client: Client
) -> None:
    row = claimed()
    form = callback_form("undelivered", ErrorCode="30005")
    url = status_callback_url(FUNCTION_URL, JOB, row) + "&attempt=2"
    headers = {
        "content-type": "application/x-www-form-urlencoded; charset=utf-8",
        "X-Twilio-Signature": signed(url, form),
        "x-amzn-trace-id": "Root=1-0",
        "i-twilio-idempotency-token": "abc",
    }
    event = url_event(urlencode(form).encode(), query=url.split("?", 1)[1], headers=headers)

    assert invoke(client, event)["statusCode"] == 204
    item = result_item(stack, row, job=JOB)
    assert (item["delivery_status"], item["delivery_error_code"]) == ("undelivered", "30005")


def test_a_query_parameter_named_twice_is_400_even_when_signed(
    stack: Stack, client: Client
) -> None:
    row = claimed()
    form = callback_form("delivered")
    url = status_callback_url(FUNCTION_URL, JOB, row) + f"&row={row + 1}"
    headers = {"content-type": "application/x-www-form-urlencoded"}
    headers["x-twilio-signature"] = signed(url, form)
    event = url_event(urlencode(form).encode(), query=url.split("?", 1)[1], headers=headers)

    assert invoke(client, event)["statusCode"] == 400
    assert result_item(stack, row, job=JOB) == {}


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "OPTIONS", "HEAD"])
def test_only_post_is_taken(client: Client, method: str) -> None:
    response = invoke(client, callback_event(callback_form("sent"), row=1, method=method))

    assert response["statusCode"] == 405
    assert response["headers"]["Allow"] == "POST"


@pytest.mark.parametrize("content_type", [None, "application/json", "text/plain", "multipart/x"])
def test_a_body_that_is_not_a_form_is_415(client: Client, content_type: str | None) -> None:
    event = callback_event(callback_form("sent"), row=1)
    del event["headers"]["content-type"]
    if content_type is not None:
        event["headers"]["content-type"] = content_type

    assert invoke(client, event)["statusCode"] == 415


def test_a_body_marked_base64_that_is_not_is_400(client: Client) -> None:
    event = callback_event(callback_form("sent"), row=1)
    event.update({"isBase64Encoded": True, "body": "MessageStatus=sent&%%%"})

    response = invoke(client, event)

    assert response["statusCode"] == 400
    assert "base64" in response["body"]


def _broken(event: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    target = event
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return event


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("requestContext",), KeyError),
        (("requestContext",), "x"),
        (("requestContext", "http"), KeyError),
        (("requestContext", "http", "method"), None),
        (("requestContext", "domainName"), KeyError),
        (("rawPath",), KeyError),
        (("rawQueryString",), 7),
        (("headers",), ["x-twilio-signature"]),
        (("headers",), {"x-twilio-signature": ["a", "b"]}),
        (("body",), {"MessageStatus": "sent"}),
    ],
    ids=str,
)
def test_a_malformed_event_is_a_clear_400(
    client: Client, path: tuple[str, ...], value: Any
) -> None:
    event = _broken(callback_event(callback_form("sent"), row=1), path, value)

    response = invoke(client, event)

    assert response["statusCode"] == 400
    assert response["headers"]["Content-Type"] == "application/json"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    event=json_values
    | st.fixed_dictionaries(
        {},
        optional={
            "rawPath": json_values,
            "rawQueryString": json_values,
            "headers": json_values,
            "body": json_values,
            "isBase64Encoded": json_values,
            "requestContext": json_values,
        },
    )
)
def test_any_event_gets_a_4xx_answer_never_an_exception(client: Client, event: Any) -> None:
    response = invoke(client, event)

    assert 400 <= response["statusCode"] < 500
    assert set(response) == {"statusCode", "headers", "body"}


def test_a_callback_for_a_message_its_row_did_not_create_is_refused(
    stack: Stack, client: Client
) -> None:
    row = claimed()
    wiring.ledger().bind_callback(JOB, row, "SM" + "b" * 32, "+14155550100")
    event = callback_event(callback_form("delivered"), row=row)

    assert invoke(client, event)["statusCode"] == 403
    assert result_item(stack, row, job=JOB) == {}


def _stored(stack: Stack, row: int) -> dict[str, Any]:
    # The row's own key and the times of the writes differ; everything the callbacks set must not.
    item = result_item(stack, row, job=JOB)
    return {k: v for k, v in item.items() if k not in ("row", "delivery_at", "claimed_at")}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(api=st.sampled_from(["messages", "calls"]), data=st.data())
def test_the_function_url_answers_and_writes_as_the_rest_route_for_the_same_callbacks(
    stack: Stack, client: Client, api: str, data: st.DataObject
) -> None:
    ranks = CALL_STATUS_RANK if api == "calls" else STATUS_RANK
    statuses = data.draw(st.lists(st.sampled_from([*ranks, *UNKNOWN]), min_size=1, max_size=6))
    error = data.draw(st.sampled_from([None, "30003", "30007", "x1"]))
    extra = {} if error is None else {"ErrorCode": error}
    # An unclaimed row is one no call of this job made: both refuse its callbacks.
    if data.draw(st.booleans()):
        rest_row, url_row = claimed(), claimed()
    else:
        rest_row, url_row = next(_rows), next(_rows)

    def form(status: str) -> dict[str, str]:
        return call_form(status, **extra) if api == "calls" else callback_form(status, **extra)

    rest = [deliver(client, form(s), row=rest_row, job=JOB).status_code for s in statuses]
    through_url = [
        invoke(client, callback_event(form(s), row=url_row))["statusCode"] for s in statuses
    ]

    assert through_url == rest
    assert _stored(stack, url_row) == _stored(stack, rest_row)
