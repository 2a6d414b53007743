"""The emulator's replies reach POST /twilio/inbound signed as Twilio signs them: a STOP sent by
the emulator suppresses the sender's later rows, and a reply to another URL is refused."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from chalice.test import Client

from callqueue.local.emulator import TwilioEmulator
from chalicelib import wiring
from tests.handlers.test_pipeline import (
    VALID_FROM,
    drain_responses,
    queued,
    sqs_event,
    subscribe_responses,
)
from tests.stack import ACCOUNT_SID, AUTH_TOKEN, Stack

SENDER = "+14155550100"


class _Forward(BaseHTTPRequestHandler):
    """Hands each POST to the app through chalice.test.Client, as API Gateway would."""

    client: ClassVar[Client]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {k: v for k, v in self.headers.items() if k.lower() != "content-length"}
        answer = self.client.http.post(self.path, headers=headers, body=body)
        self.send_response(answer.status_code)
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def api_url(stack: Stack, tmp_path: Path) -> Iterator[str]:
    import app as app_module

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Forward)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as client:
        _Forward.client = client
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield url
        server.shutdown()
        server.server_close()


def emulator_replying_to(url: str) -> TwilioEmulator:
    return TwilioEmulator(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, inbound_url=url)


def test_emulator_stop_reply_suppresses_later_rows(
    stack: Stack, api_url: str, emulator: TwilioEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INBOUND_WEBHOOK_URL", f"{api_url}/twilio/inbound")
    wiring.reset()
    observer = subscribe_responses(stack)

    with emulator_replying_to(f"{api_url}/twilio/inbound") as replying:
        assert replying.reply(SENDER, VALID_FROM, "STOP") == 200

    row = queued(1, {"To": SENDER, "From": VALID_FROM, "Body": "after the STOP"})
    _Forward.client.lambda_.invoke("handle_send_batch", sqs_event([row]))
    (outcome,) = drain_responses(stack, observer)
    assert outcome["outcome"] == "suppressed"
    assert not [r for r in emulator.requests if r["method"] == "POST"]


def test_emulator_reply_signed_for_another_url_is_refused(
    stack: Stack, api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INBOUND_WEBHOOK_URL", "https://api.example.com/api/twilio/inbound")
    wiring.reset()

    with emulator_replying_to(f"{api_url}/twilio/inbound") as replying:
        assert replying.reply(SENDER, VALID_FROM, "STOP") == 403

    assert list(wiring.suppression().list()) == []


def test_emulator_without_an_inbound_url_cannot_reply() -> None:
    with (
        TwilioEmulator(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as plain,
        pytest.raises(RuntimeError, match="inbound_url"),
    ):
        plain.reply(SENDER, VALID_FROM, "STOP")
