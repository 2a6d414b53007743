"""The local function URL's events (callqueue.local.function_url) have the shape Lambda gives
(payload format 2.0), and the callback function reads back from them exactly the request that
was sent: its URL as called, its query, its form and its signature."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callqueue.local.function_url import FunctionUrlServer, event_of, response_of
from chalicelib.api.callback_url import BadEvent, CallbackRequest, answer

HOST = "127.0.0.1:8123"
FORM_TYPE = "application/x-www-form-urlencoded"

names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)
values = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)


@given(
    form=st.dictionaries(names, values, max_size=6),
    query=st.dictionaries(names, values, max_size=4),
    signature=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40),
)
def test_the_callback_function_reads_back_the_request_the_local_url_was_sent(
    form: dict[str, str], query: dict[str, str], signature: str
) -> None:
    raw_query = urlencode(query)
    target = "/" + (f"?{raw_query}" if raw_query else "")
    headers = [("Host", HOST), ("Content-Type", FORM_TYPE), ("X-Twilio-Signature", signature)]

    request = CallbackRequest.of_event(event_of("POST", target, headers, urlencode(form).encode()))

    assert request.url == f"http://{HOST}{target}"
    assert (request.query, request.form, request.signature) == (query, form, signature)


def test_an_event_has_lambda_s_shape_form_bodies_in_base64_and_joined_repeated_headers() -> None:
    headers = [("Host", HOST), ("Content-Type", FORM_TYPE), ("X-A", "1"), ("x-a", "2")]

    event = event_of("POST", "/p?job=j&row=1&row=2", headers, b"A=1&B=2", now=1.5e9)

    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert (event["rawPath"], event["rawQueryString"]) == ("/p", "job=j&row=1&row=2")
    assert event["queryStringParameters"] == {"job": "j", "row": "1,2"}
    assert event["headers"]["x-a"] == "1,2" and event["headers"]["x-forwarded-proto"] == "http"
    assert all(name == name.lower() for name in event["headers"])
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"A=1&B=2"
    context = event["requestContext"]
    assert (context["domainName"], context["http"]["method"]) == (HOST, "POST")
    assert context["timeEpoch"] == 1_500_000_000_000


def test_a_text_body_is_passed_as_text_and_no_body_as_none() -> None:
    event = event_of("POST", "/", [("Content-Type", "application/json")], b'{"a": 1}')
    assert (event["isBase64Encoded"], event["body"]) == (False, '{"a": 1}')

    empty = event_of("GET", "/", [], b"")
    assert "body" not in empty and empty["isBase64Encoded"] is False
    assert "queryStringParameters" not in empty


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_a_local_request_the_function_refuses_is_refused_as_on_aws(method: str) -> None:
    event = event_of(method, "/", [("Content-Type", FORM_TYPE)], b"")

    with pytest.raises(BadEvent) as refused:
        CallbackRequest.of_event(event)

    assert refused.value.status == 405


def test_a_function_s_response_becomes_the_http_answer() -> None:
    assert response_of(answer(204)) == (204, {}, b"")
    status, headers, body = response_of(answer(405, "MethodNotAllowedError", "use POST"))
    assert (status, headers["Allow"], json.loads(body)["Code"]) == (
        405,
        "POST",
        "MethodNotAllowedError",
    )
    encoded = {
        "statusCode": 200,
        "body": base64.b64encode(b"\x00").decode(),
        "isBase64Encoded": True,
    }
    assert response_of(encoded) == (200, {}, b"\x00")
    assert response_of({"ok": True}) == (200, {"Content-Type": "application/json"}, b'{"ok": true}')


def test_a_caller_that_leaves_before_the_answer_gets_no_traceback_and_the_function_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The emulator gives up on a callback after its timeout; on a busy machine the function
    answers after that. The function's work stands, and the terminal shows no traceback."""
    ran = threading.Event()
    answered = threading.Event()

    def slow(event: dict[str, object]) -> dict[str, object]:
        ran.wait(5)  # the caller has gone by now
        answered.set()
        return {"statusCode": 204}

    server = FunctionUrlServer(slow)
    server.start()
    try:
        host, port = server.url.removeprefix("http://").rstrip("/").split(":")
        with socket.create_connection((host, int(port))) as caller:
            caller.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            # Left at once, unread: the answer will meet a reset connection.
            caller.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
        ran.set()
        assert answered.wait(5)
        # Whatever the server thread does after the answer is written (or not) has happened.
        for _ in range(50):
            if "Traceback" in capsys.readouterr().err:
                raise AssertionError("a traceback reached the terminal")
            time.sleep(0.02)
    finally:
        server.stop()
