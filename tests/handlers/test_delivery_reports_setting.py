"""DELIVERY_REPORTS: with it off, the deployed gateway asks Twilio for no status callback (a row's
own StatusCallback still goes as the row gave it); on (the default), every message and call asks
at the stack's URL. Against moto's stack and the emulator, through the real Twilio SDK."""

from __future__ import annotations

import pytest

from callqueue.local.emulator import TwilioEmulator
from chalicelib import wiring
from chalicelib.config import ConfigError
from chalicelib.core.records import CallRequest
from chalicelib.twilio.callbacks import status_callback_url
from tests.handlers.test_status_callback import PUBLIC_URL
from tests.stack import Stack

JOB = "reports-0123456789ab"
OWN = "https://example.com/mine"


def send_three(monkeypatch: pytest.MonkeyPatch, setting: str | None) -> None:
    """Through the deployed gateway: a message, a call and a message with its own callback."""
    monkeypatch.setenv("STATUS_CALLBACK_URL", PUBLIC_URL)
    if setting is None:
        monkeypatch.delenv("DELIVERY_REPORTS", raising=False)
    else:
        monkeypatch.setenv("DELIVERY_REPORTS", setting)
    wiring.reset()
    gateway = wiring.gateway()
    text = {"To": "+14155550100", "From": "+15005550006", "Body": "hi"}
    call = {"To": "+14155550100", "From": "+15005550006", "Url": "https://example.com/twiml"}
    gateway.call(CallRequest("messages", dict(text), job_id=JOB, row=1))
    gateway.call(CallRequest("calls", dict(call), job_id=JOB, row=2))
    gateway.call(CallRequest("messages", {**text, "StatusCallback": OWN}, job_id=JOB, row=3))


@pytest.mark.parametrize("setting", [None, "on"])
def test_messages_and_calls_ask_for_callbacks_by_default(
    stack: Stack, emulator: TwilioEmulator, monkeypatch: pytest.MonkeyPatch, setting: str | None
) -> None:
    send_three(monkeypatch, setting)

    asked = [r["params"].get("StatusCallback") for r in emulator.requests]
    assert asked == [
        status_callback_url(PUBLIC_URL, JOB, 1),
        status_callback_url(PUBLIC_URL, JOB, 2),
        OWN,
    ]
    assert emulator.requests[1]["params"].get("StatusCallbackEvent")


def test_with_delivery_reports_off_no_callback_is_asked_for_but_a_row_s_own(
    stack: Stack, emulator: TwilioEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    send_three(monkeypatch, "off")

    asked = [r["params"].get("StatusCallback") for r in emulator.requests]
    assert asked == [None, None, OWN]
    assert "StatusCallbackEvent" not in emulator.requests[1]["params"]


def test_a_misspelt_setting_is_refused_naming_it(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DELIVERY_REPORTS", "no")
    wiring.reset()
    with pytest.raises(ConfigError, match="DELIVERY_REPORTS must be 'on' or 'off', got 'no'"):
        wiring.settings()
