"""The Twilio gateway holds each call for its slot after the SDK has built the request and just
before it is sent (chalicelib.twilio_gateway), against the Twilio emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from twilio.rest import Client

from callqueue.emulator import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, TwilioEmulator
from chalicelib.records import CallRequest
from chalicelib.twilio_gateway import CapturingHttpClient, SlotMissed, TwilioGateway

MESSAGE = CallRequest("messages", {"To": "+15551234567", "From": "+15005550006", "Body": "Hi"})


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def emulator() -> Iterator[TwilioEmulator]:
    with TwilioEmulator(account_sid=DEFAULT_ACCOUNT_SID, auth_token=DEFAULT_AUTH_TOKEN) as running:
        yield running


def gateway(emulator: TwilioEmulator, clock: Clock) -> TwilioGateway:
    http = CapturingHttpClient(emulator.base_url, timeout=10)
    client = Client(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, http_client=http)
    return TwilioGateway(client, http, clock=clock)


def test_a_call_waits_for_its_hold_once_built_and_starts_when_it_is_sent(
    emulator: TwilioEmulator,
) -> None:
    clock = Clock()
    seen_by_twilio: list[int] = []

    def hold() -> None:
        seen_by_twilio.append(len(emulator.requests))
        clock.now = 1_005.0  # the slot, five seconds on

    result = gateway(emulator, clock).call(MESSAGE, hold=hold)

    assert seen_by_twilio == [0]  # held before anything reached Twilio
    assert result.status == 201 and len(emulator.requests) == 1
    assert result.started_at == 1_005.0  # when the request went, not when the call began


def test_a_call_too_late_for_its_slot_sends_nothing_and_leaves_no_hold_behind(
    emulator: TwilioEmulator,
) -> None:
    twilio = gateway(emulator, Clock())
    holds: list[str] = []

    def missed() -> None:
        holds.append("missed")
        raise SlotMissed

    with pytest.raises(SlotMissed):
        twilio.call(MESSAGE, hold=missed)
    assert emulator.requests == [] and holds == ["missed"]

    # The thread's next request, a lookup of Twilio's messages, is not held (nor refused).
    assert twilio.find_message(MESSAGE.params, since=0.0) is None
    assert holds == ["missed"] and len(emulator.requests) == 1
