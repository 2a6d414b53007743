"""POST /twilio/inbound through chalice.test.Client: opt-out and opt-in keywords keep the
suppression list, any other reply changes nothing, and only Twilio's signed replies to this
stack's account are accepted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from chalice.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from callqueue.local.emulator import TwilioEmulator
from chalicelib import wiring
from chalicelib.api.inbound import METRIC, number_tag
from chalicelib.observability import Metrics
from chalicelib.twilio.opt_out import (
    HELP_KEYWORDS,
    OPT_IN_KEYWORDS,
    OPT_OUT_KEYWORDS,
    Keyword,
    keyword_of,
)
from tests.handlers.test_pipeline import (
    VALID_FROM,
    drain_responses,
    queued,
    sqs_event,
    subscribe_responses,
)
from tests.stack import ACCOUNT_SID, AUTH_TOKEN, Stack

PUBLIC_URL = "https://api.example.com/api/twilio/inbound"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SENDER = "+14155550100"
OTHER = "+14155550199"


@pytest.fixture
def client(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    import app as app_module

    monkeypatch.setenv("INBOUND_WEBHOOK_URL", PUBLIC_URL)
    wiring.reset()
    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


def reply_form(body: str, *, sender: str = SENDER, account: str = ACCOUNT_SID) -> dict[str, str]:
    return {
        "AccountSid": account,
        "MessageSid": "SM" + "b" * 32,
        "SmsSid": "SM" + "b" * 32,
        "From": sender,
        "To": VALID_FROM,
        "Body": body,
        "NumMedia": "0",
        "ApiVersion": "2010-04-01",
    }


def post(
    client: Client,
    form: dict[str, str],
    *,
    signature: str | None = "sign",
    url: str = PUBLIC_URL,
    token: str = AUTH_TOKEN,
) -> Any:
    headers = dict(FORM)
    if signature == "sign":
        headers["X-Twilio-Signature"] = RequestValidator(token).compute_signature(url, form)
    elif signature is not None:
        headers["X-Twilio-Signature"] = signature
    return client.http.post("/twilio/inbound", headers=headers, body=urlencode(form).encode())


def suppressed() -> dict[str, str]:
    return {s.number: s.reason for s in wiring.suppression().list()}


def cases(words: frozenset[str]) -> list[str]:
    """Each keyword as typed: upper, lower, mixed case and with surrounding whitespace."""
    return sorted(
        {form for w in words for form in (w, w.lower(), w.capitalize(), f"  {w.lower()}\n\t")}
    )


@pytest.mark.parametrize("body", cases(OPT_OUT_KEYWORDS))
def test_inbound_opt_out_keyword_suppresses_the_sender(client: Client, body: str) -> None:
    response = post(client, reply_form(body))

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/xml"
    assert "<Response/>" in response.body.decode()
    assert suppressed() == {SENDER: f"replied {body.strip().upper()}"}
    assert [s.source for s in wiring.suppression().list()] == ["reply"]


@pytest.mark.parametrize("body", cases(OPT_IN_KEYWORDS))
def test_inbound_opt_in_keyword_removes_the_sender(client: Client, body: str) -> None:
    wiring.suppression().add(SENDER, "replied STOP")
    wiring.suppression().add(OTHER, "replied STOP")

    assert post(client, reply_form(body)).status_code == 200

    assert suppressed() == {OTHER: "replied STOP"}


def test_inbound_opt_out_then_opt_in_ends_unsuppressed(client: Client) -> None:
    post(client, reply_form("STOP"))
    post(client, reply_form("start"))

    assert suppressed() == {}


@pytest.mark.parametrize("body", ["ARRÊT", "Baja", "停止", "x" * 300])
def test_inbound_localised_opt_out_is_believed_from_twilios_opt_out_type(
    client: Client, body: str
) -> None:
    """Advanced Opt-Out recognises a Messaging Service's own (localised) keywords and says so in
    `OptOutType`; the reason keeps at most 40 characters of the reply."""
    assert post(client, {**reply_form(body), "OptOutType": "STOP"}).status_code == 200

    assert suppressed() == {SENDER: f"replied {body.upper()[:40]}"}


def test_inbound_localised_opt_in_and_help_follow_opt_out_type(client: Client) -> None:
    wiring.suppression().add(SENDER, "replied STOP")
    post(client, {**reply_form("AIDE"), "OptOutType": "HELP"})
    assert set(suppressed()) == {SENDER}

    post(client, {**reply_form("OUI"), "OptOutType": "start"})

    assert suppressed() == {}


@pytest.mark.parametrize("kind", ["", "STOPALL", "UNKNOWN", "stop please"])
def test_inbound_opt_out_type_twilio_never_sends_falls_back_to_the_body(
    client: Client, kind: str
) -> None:
    post(client, {**reply_form("hello"), "OptOutType": kind})
    post(client, {**reply_form("STOP", sender=OTHER), "OptOutType": kind})

    assert set(suppressed()) == {OTHER}


def test_inbound_normalises_the_sender_as_rows_are(client: Client) -> None:
    assert post(client, reply_form("STOP", sender="+1 (415) 555-0100")).status_code == 200

    assert set(suppressed()) == {SENDER}


@pytest.mark.parametrize(
    "body", ["stop please", "STOPPED", "", "   ", "S T O P", "hello", "help me"]
)
def test_inbound_other_text_stores_nothing(client: Client, body: str) -> None:
    wiring.suppression().add(OTHER, "replied STOP")

    response = post(client, reply_form(body))

    assert response.status_code == 200
    assert suppressed() == {OTHER: "replied STOP"}


@pytest.mark.parametrize("body", cases(HELP_KEYWORDS))
def test_inbound_help_is_counted_and_logged_without_the_number_or_body(
    client: Client, body: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines: list[str] = []
    monkeypatch.setattr(wiring, "metrics", cache(lambda: Metrics("dev", sink=lines.append)))
    wiring.inbound_messages.cache_clear()
    wiring.suppression().add(SENDER, "replied STOP")
    caplog.set_level("INFO")

    assert post(client, reply_form(body)).status_code == 200

    assert suppressed() == {SENDER: "replied STOP"}
    logged = [r.getMessage() for r in caplog.records if r.name == "chalicelib.api.inbound"]
    # The keyword's kind and the number's tag: neither the number nor what was typed.
    assert logged == [f"incoming help from {number_tag(SENDER)}"]
    assert SENDER[-4:] not in logged[0]
    (line,) = lines
    assert (json.loads(line)["Keyword"], json.loads(line)[METRIC]) == ("help", 1)


def test_inbound_with_another_text_logs_nothing(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")

    post(client, reply_form("meet me at noon"))

    assert not [r for r in caplog.records if "noon" in r.getMessage()]
    assert not [r for r in caplog.records if r.name == "chalicelib.api.inbound"]


@pytest.mark.parametrize(
    ("how", "kwargs"),
    [
        ("forged", {"signature": "c2lnbmVkIGJ5IG5vYm9keQ=="}),
        ("missing", {"signature": None}),
        ("empty", {"signature": ""}),
        ("another URL", {"url": "https://api.example.com/api/twilio/status"}),
        ("another token", {"token": "f" * 32}),
    ],
)
def test_inbound_not_signed_for_this_route_is_refused(
    client: Client, how: str, kwargs: dict[str, Any]
) -> None:
    wiring.suppression().add(OTHER, "replied STOP")

    assert post(client, reply_form("STOP"), **kwargs).status_code == 403
    assert post(client, reply_form("START", sender=OTHER), **kwargs).status_code == 403

    assert suppressed() == {OTHER: "replied STOP"}, how


def test_inbound_signed_form_changed_after_signing_is_refused(client: Client) -> None:
    form = reply_form("hello")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL, form)

    response = post(client, {**form, "Body": "STOP"}, signature=signature)

    assert response.status_code == 403
    assert suppressed() == {}


def test_inbound_for_another_account_is_refused(client: Client) -> None:
    response = post(client, reply_form("STOP", account="AC" + "9" * 32))

    assert response.status_code == 403
    assert suppressed() == {}


def test_inbound_signed_without_from_is_a_bad_request(client: Client) -> None:
    form = reply_form("STOP")
    del form["From"]

    assert post(client, form).status_code == 400
    assert suppressed() == {}


def test_inbound_without_a_configured_url_refuses_everything(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INBOUND_WEBHOOK_URL")
    monkeypatch.delenv("STATUS_CALLBACK_URL", raising=False)
    wiring.reset()

    assert post(client, reply_form("STOP")).status_code == 403
    assert suppressed() == {}


def test_inbound_stop_makes_the_sender_suppress_a_later_row(
    stack: Stack, client: Client, emulator: TwilioEmulator
) -> None:
    observer = subscribe_responses(stack)
    assert post(client, reply_form("Stop ")).status_code == 200

    row = queued(1, {"To": SENDER, "From": VALID_FROM, "Body": "after the STOP"})
    client.lambda_.invoke("handle_send_batch", sqs_event([row]))

    (outcome,) = drain_responses(stack, observer)
    assert outcome["outcome"] == "suppressed"
    assert not [r for r in emulator.requests if r["method"] == "POST"]


# A form body is UTF-8: lone surrogates cannot be sent.
_CHARS = st.characters(exclude_categories=("Cs",))
_KEYWORDS = OPT_OUT_KEYWORDS | OPT_IN_KEYWORDS | HELP_KEYWORDS


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        st.text(_CHARS, max_size=20),
        st.sampled_from(sorted(_KEYWORDS)).flatmap(
            lambda w: st.tuples(st.text(_CHARS, max_size=3), st.text(_CHARS, max_size=3)).map(
                lambda ab: ab[0] + w + ab[1]
            )
        ),
    )
)
def test_inbound_body_that_is_not_exactly_a_keyword_never_changes_the_list(
    client: Client, body: str
) -> None:
    if body.strip().upper() in OPT_OUT_KEYWORDS | OPT_IN_KEYWORDS:
        return
    wiring.suppression().add(OTHER, "replied STOP")
    before = suppressed()

    assert post(client, reply_form(body)).status_code == 200
    assert post(client, reply_form(body, sender=OTHER)).status_code == 200

    assert suppressed() == before


def test_keyword_of_matches_the_whole_trimmed_body_in_any_case() -> None:
    assert keyword_of(" sToP\r\n") is Keyword.OPT_OUT
    assert keyword_of("unstop") is Keyword.OPT_IN
    assert keyword_of("Info") is Keyword.HELP
    assert keyword_of("STOP STOP") is None
    assert keyword_of("STOP.") is None
