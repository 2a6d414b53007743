"""Settings from the environment: resource names, typed readers that name their variable, the
account's rate headroom and the slot tolerance."""

from __future__ import annotations

import dataclasses

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


def test_resource_names_default_to_the_stage_region_and_account_unless_set() -> None:
    settings = Settings.from_env(
        {
            "CALLQUEUE_STAGE": "prod",
            "AWS_REGION": "eu-west-1",
            "CALLQUEUE_ACCOUNT_ID": "123456789012",
            "HOLDING_BUCKET": "my-holding",
        }
    )
    assert settings.source_bucket == "callqueue-prod-source"
    assert settings.holding_bucket == "my-holding"
    assert settings.dead_letter_queue == "callqueue-prod-send-dlq"
    assert settings.idempotency_table == "callqueue-prod-calls"
    assert settings.response_topic_arn == (
        "arn:aws:sns:eu-west-1:123456789012:callqueue-prod-responses"
    )
    assert settings.state_machine_arn == (
        "arn:aws:states:eu-west-1:123456789012:stateMachine:callqueue-prod-release"
    )
    assert settings.twilio_secret_id == "callqueue/twilio"
    default_region = Settings.from_env({"AWS_DEFAULT_REGION": "us-west-2"})
    assert default_region.alert_topic_arn == (
        "arn:aws:sns:us-west-2:000000000000:callqueue-dev-alerts"
    )


def test_every_setting_read_from_the_environment_has_its_declared_type() -> None:
    kinds = {
        "str": (str,),
        "int": (int,),
        "float": (float,),
        "str | None": (str, type(None)),
        "int | None": (int, type(None)),
        "CredentialKind": (str,),
        "ApiAuth": (str,),
    }
    env = {"TWILIO_CONCURRENCY_LIMIT": "30", "RESULTS_PAGE_SIZE": "100", "TWILIO_BASE_URL": "x"}
    for settings in (Settings.from_env({}), Settings.from_env(env)):
        for field in dataclasses.fields(settings):
            value = getattr(settings, field.name)
            assert isinstance(value, kinds[str(field.type)]), (field.name, value)
            assert not isinstance(value, bool), field.name


def test_the_account_rate_is_the_cps_unless_set() -> None:
    assert Settings.from_env({"CPS": "7"}).account_cps == 7.0
    assert Settings.from_env({"CPS": "7", "ACCOUNT_CPS": ""}).account_cps == 7.0
    assert Settings.from_env({"CPS": "7", "ACCOUNT_CPS": "12.5"}).account_cps == 12.5


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CPS", "ten", "CPS must be an integer, got 'ten'"),
        ("TWILIO_CONCURRENCY_LIMIT", "1.5", "TWILIO_CONCURRENCY_LIMIT must be an integer"),
        ("BACKOFF_BASE_SECONDS", "2s", "BACKOFF_BASE_SECONDS must be a number, got '2s'"),
        ("ACCOUNT_CPS", "fast", "ACCOUNT_CPS must be a number"),
        ("TWILIO_CREDENTIALS", "prod", "TWILIO_CREDENTIALS must be 'test' or 'live', got 'prod'"),
        ("API_AUTH", "", "API_AUTH must be 'api_key' or 'iam', got ''"),
    ],
)
def test_a_malformed_setting_is_refused_naming_its_variable(
    name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    assert str(caught.value).startswith(message)
