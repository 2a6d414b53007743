"""The send trigger's window a local run tells its senders is the one its triggers gather: rows
are made visible that window (plus two seconds) early, so a sender told a longer one holds every
batch for the difference (docs/decisions/sender-batches.md)."""

from __future__ import annotations

import pytest

from callqueue.local.options import Options
from callqueue.local.triggers import DEPLOYED_WINDOWS_ENV, MAX_LOCAL_BATCHING_WINDOW
from chalicelib.config import Settings

BATCH = "SENDER_BATCH_SIZE"
WINDOW = "SENDER_BATCHING_WINDOW_SECONDS"


def told(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    for name in (BATCH, WINDOW, DEPLOYED_WINDOWS_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Options().handler_settings("http://127.0.0.1:1", "callqueue/twilio")
    return Settings.from_env({**env, **settings})


def test_a_local_run_tells_its_senders_the_capped_window(monkeypatch: pytest.MonkeyPatch) -> None:
    s = told(monkeypatch, {})
    assert s.sender_batching_window_seconds == MAX_LOCAL_BATCHING_WINDOW
    assert s.sender_batch_size == 100
    # The deployed defaults are longer: without the local values the senders would wait them.
    assert Settings.from_env({}).sender_batching_window_seconds > MAX_LOCAL_BATCHING_WINDOW


@pytest.mark.parametrize(("batch", "window"), [("10", "0"), ("500", "1"), ("2000", "3")])
def test_a_set_variable_stands(monkeypatch: pytest.MonkeyPatch, batch: str, window: str) -> None:
    s = told(monkeypatch, {BATCH: batch, WINDOW: window})
    assert (s.sender_batch_size, s.sender_batching_window_seconds) == (int(batch), int(window))


def test_deployed_windows_keep_the_deployed_trigger(monkeypatch: pytest.MonkeyPatch) -> None:
    s = told(monkeypatch, {DEPLOYED_WINDOWS_ENV: "1"})
    deployed = Settings.from_env({})
    assert s.sender_batching_window_seconds == deployed.sender_batching_window_seconds == 5
    assert s.sender_batch_size == deployed.sender_batch_size == 1000
