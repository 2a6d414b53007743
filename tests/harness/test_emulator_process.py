"""The Twilio emulator as the local runtime runs it: in a process of its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from callqueue.local.emulator import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
from callqueue.local.emulator_process import EmulatorProcess
from callqueue.local.faults import FaultSpec
from chalicelib.twilio.gateway import CapturingHttpClient


def client(emulator: EmulatorProcess) -> Client:
    http = CapturingHttpClient(emulator.base_url, timeout=10)
    return Client(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, http_client=http)


def test_the_emulator_process_answers_and_logs_each_request(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    log.write_text('{"t": 1.0, "earlier": "run"}\n')  # appended to, never read back
    emulator = EmulatorProcess(
        account_sid=DEFAULT_ACCOUNT_SID, auth_token=DEFAULT_AUTH_TOKEN, requests_log=log
    )
    emulator.start()
    try:
        message = client(emulator).messages.create(
            to="+15551234567", from_="+15005550006", body="Hi"
        )
        assert message.status == "queued"
        [logged] = emulator.requests
        assert logged["params"]["Body"] == "Hi"
        assert logged["sid"] == message.sid
        again = client(emulator).messages.create(to="+15551234567", from_="+15005550006", body="2")
        assert [r["sid"] for r in emulator.requests] == [message.sid, again.sid]
    finally:
        emulator.stop()
    # Still there once stopped, read once each.
    assert [r["sid"] for r in emulator.requests] == [message.sid, again.sid]
    assert len(log.read_text().splitlines()) == 3


def test_the_emulator_process_takes_its_faults() -> None:
    emulator = EmulatorProcess(
        account_sid=DEFAULT_ACCOUNT_SID,
        auth_token=DEFAULT_AUTH_TOKEN,
        faults=FaultSpec.parse("429=1.0"),
        seed=7,
    )
    emulator.start()
    try:
        with pytest.raises(TwilioRestException) as raised:
            client(emulator).messages.create(to="+15551234567", from_="+15005550006", body="Hi")
        assert raised.value.status == 429
        [logged] = emulator.requests
        assert (logged["status"], logged["fault"]) == (429, "429")
    finally:
        emulator.stop()
    with pytest.raises(RuntimeError):
        _ = emulator.base_url


def test_the_emulator_process_takes_its_fidelity_options() -> None:
    emulator = EmulatorProcess(
        account_sid=DEFAULT_ACCOUNT_SID,
        auth_token=DEFAULT_AUTH_TOKEN,
        lookup_faults=FaultSpec.parse("500=1.0"),
        trial_account=True,
    )
    emulator.start()
    try:
        sdk = client(emulator)
        message = sdk.messages.create(to="+15551234567", from_="+15005550006", body="Hi")
        assert message.body == "Sent from your Twilio trial account - Hi"
        with pytest.raises(TwilioRestException) as faulted:
            sdk.messages(message.sid).fetch()
        assert faulted.value.status == 500
    finally:
        emulator.stop()
    assert [(r["status"], r["fault"]) for r in emulator.requests] == [(201, None), (500, "500")]


def test_the_emulator_process_takes_test_credentials() -> None:
    emulator = EmulatorProcess(
        account_sid=DEFAULT_ACCOUNT_SID, auth_token=DEFAULT_AUTH_TOKEN, test_credentials=True
    )
    emulator.start()
    try:
        with pytest.raises(TwilioRestException) as denied:
            client(emulator).verify.v2.services("VA" + "1" * 32).verifications.create(
                to="+15551234567", channel="sms"
            )
        assert (denied.value.status, denied.value.code) == (403, 20008)
    finally:
        emulator.stop()
