"""The send trigger's concurrency: sized from the account's rate unless set, within SQS's bounds,
and what app.py gives the trigger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.config import ConfigError, Settings
from chalicelib.core.capacity import (
    CALLS_PER_INSTANCE,
    MIN_INSTANCES,
    SQS_MAX_CONCURRENCY,
    sender_concurrency,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("cps", "instances"),
    [(1, 50), (10, 50), (200, 50), (201, 51), (400, 100), (1000, 250), (2000, 500), (1e5, 1000)],
)
def test_the_trigger_concurrency_grows_with_the_account_rate(cps: float, instances: int) -> None:
    assert sender_concurrency(cps) == instances
    assert Settings.from_env({"ACCOUNT_CPS": str(cps)}).sender_max_concurrency == instances


@given(cps=st.floats(0.01, 1e6))
def test_the_sized_concurrency_serves_the_rate_within_sqs_bounds(cps: float) -> None:
    instances = sender_concurrency(cps)
    assert MIN_INSTANCES <= instances <= SQS_MAX_CONCURRENCY
    assert instances * CALLS_PER_INSTANCE >= min(cps, SQS_MAX_CONCURRENCY * CALLS_PER_INSTANCE)


def test_an_explicit_concurrency_stands_whatever_the_rate() -> None:
    env = {"ACCOUNT_CPS": "2000", "SENDER_MAX_CONCURRENCY": "20"}
    assert Settings.from_env(env).sender_max_concurrency == 20
    assert Settings.from_env({"CPS": "400"}).sender_max_concurrency == 100  # ACCOUNT_CPS unset


@pytest.mark.parametrize("value", ["1", "1001", "-3", "many"])
def test_a_concurrency_out_of_sqs_bounds_is_refused_naming_its_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="SENDER_MAX_CONCURRENCY") as refused:
        Settings.from_env({"SENDER_MAX_CONCURRENCY": value})
    assert len(str(refused.value).splitlines()) == 1


def test_app_gives_the_send_trigger_the_concurrency_sized_from_the_rate() -> None:
    # app.py reads its decorator arguments at import, from the stage's variables (Chalice sets
    # them before it imports app.py to package or deploy).
    script = (
        "import json, app\n"
        "print(json.dumps({c.name: c.maximum_concurrency for c in app.app.event_sources\n"
        "    if getattr(c, 'maximum_concurrency', None)}))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ACCOUNT_CPS": "2000"}
    env.pop("SENDER_MAX_CONCURRENCY", None)
    command = [sys.executable, "-c", script]
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"handle_send_batch": 500}
