"""The Twilio gateway holds each call for its slot after the SDK has built the request and just
before it is sent (chalicelib.twilio.gateway), against the Twilio emulator."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import urllib3
from twilio.rest import Client

from callqueue.local.emulator import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, TwilioEmulator
from chalicelib.core.records import CallRequest
from chalicelib.twilio.gateway import CapturingHttpClient, SlotMissed, TwilioGateway

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

    # Held on the open connection, and checked again at the request's first write: both
    # before anything reached Twilio.
    assert seen_by_twilio == [0, 0]
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
    assert twilio.look_up(MESSAGE, since=0.0).verdict == "absent"
    assert holds == ["missed"] and len(emulator.requests) == 1


def test_a_call_is_held_on_an_open_connection_and_a_missed_slot_keeps_it(
    emulator: TwilioEmulator,
) -> None:
    # The hold runs in the connection pool: on the first call of a client, after the
    # connection to Twilio is made (no handshake between the slot and the request).
    http = CapturingHttpClient(emulator.base_url, timeout=10)
    twilio = TwilioGateway(Client(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, http_client=http), http)
    open_connections: list[bool] = []

    def missed() -> None:
        # The emulator accepts the connection on a thread of its own: a moment to see it.
        deadline = time.monotonic() + 5.0
        while emulator.open_connections == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        open_connections.append(emulator.open_connections == 1 and not emulator.requests)
        raise SlotMissed

    with pytest.raises(SlotMissed):
        twilio.call(MESSAGE, hold=missed)
    assert open_connections == [True]

    # The slot missed, the connection stays open in the pool, and the next call uses it.
    assert twilio.call(MESSAGE, hold=lambda: None).status == 201
    pools = http.session.get_adapter(emulator.base_url).poolmanager.pools
    assert [pools[key].num_connections for key in pools.keys()] == [1]  # noqa: SIM118
    assert emulator.open_connections == 1 and len(emulator.requests) == 1


def test_every_scheme_holds_its_requests_and_through_a_proxy_too(
    emulator: TwilioEmulator,
) -> None:
    http = CapturingHttpClient(emulator.base_url, timeout=10)
    for url in ("https://api.twilio.com", "http://127.0.0.1"):
        pool = http.session.get_adapter(url).poolmanager.connection_from_url(url)
        assert type(pool).urlopen is not urllib3.HTTPConnectionPool.urlopen

    # Through a proxy (here the emulator itself), the request is held before it is sent.
    http.proxy = {"http": emulator.base_url}
    twilio = TwilioGateway(Client(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, http_client=http), http)
    seen_by_twilio: list[int] = []
    twilio.call(MESSAGE, hold=lambda: seen_by_twilio.append(len(emulator.requests)))
    assert seen_by_twilio == [0]


def test_a_call_that_falls_out_of_its_slot_before_its_first_write_sends_nothing(
    emulator: TwilioEmulator,
) -> None:
    twilio = gateway(emulator, Clock())
    checks: list[str] = []

    def late_by_the_write() -> None:
        checks.append("check")
        if len(checks) == 2:  # within the slot on the open connection, out of it at the write
            raise SlotMissed

    with pytest.raises(SlotMissed):
        twilio.call(MESSAGE, hold=late_by_the_write)
    assert checks == ["check", "check"] and emulator.requests == []


def test_the_write_is_reported_after_the_last_check_and_never_for_a_call_not_sent(
    emulator: TwilioEmulator,
) -> None:
    clock = Clock()
    twilio = gateway(emulator, clock)
    events: list[tuple[str, float, int]] = []

    def hold() -> None:
        events.append(("check", clock.now, len(emulator.requests)))
        clock.now += 1.0

    def written(at: float) -> None:
        events.append(("written", at, len(emulator.requests)))

    assert twilio.call(MESSAGE, hold=hold, written=written).status == 201
    # Checked on the open connection and at the write, then told once, on the clock, after it.
    assert [(e, t) for e, t, _ in events] == [
        ("check", 1_000.0),
        ("check", 1_001.0),
        ("written", 1_002.0),
    ]

    def missed() -> None:
        raise SlotMissed

    events.clear()
    with pytest.raises(SlotMissed):
        twilio.call(MESSAGE, hold=missed, written=written)
    # No write, nothing told; and the next request of the thread reports no stale write.
    assert twilio.look_up(MESSAGE, since=0.0).verdict == "found"
    assert events == [] and len(emulator.requests) == 2
