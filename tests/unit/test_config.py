"""Settings from the environment: the account's rate headroom and the slot tolerance."""

from __future__ import annotations

import pytest

from chalicelib.config import ConfigError, Settings


def test_slots_leave_one_percent_of_the_account_rate_and_a_call_may_be_5ms_late() -> None:
    settings = Settings.from_env({"ACCOUNT_CPS": "50"})
    assert settings.rate_headroom == 0.01
    assert settings.slot_tolerance_seconds == 0.005
    assert Settings.from_env({"RATE_HEADROOM": "0"}).rate_headroom == 0.0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RATE_HEADROOM", "-0.1"),
        ("RATE_HEADROOM", "0.5"),
        ("SLOT_TOLERANCE_SECONDS", "-1"),
        ("SLOT_TOLERANCE_SECONDS", "nan"),
        ("RESULTS_PAGE_SIZE", "-5"),
        ("SENDER_BATCHING_WINDOW_SECONDS", "11"),
    ],
)
def test_out_of_range_rate_settings_are_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_results_are_read_in_dynamodbs_own_pages_unless_a_page_size_is_set() -> None:
    assert Settings.from_env({}).results_page_size is None
    assert Settings.from_env({"RESULTS_PAGE_SIZE": "200"}).results_page_size == 200
