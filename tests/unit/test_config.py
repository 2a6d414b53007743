"""Settings from the environment: resource names, typed readers that name their variable, the
account's rate headroom and the slot tolerance."""

from __future__ import annotations

import dataclasses

import pytest

from chalicelib.config import ConfigError, Settings, inbound_url


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
    assert settings.results_table == "callqueue-prod-results"
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
        "bool": (bool,),
    }
    env = {"TWILIO_CONCURRENCY_LIMIT": "30", "RESULTS_PAGE_SIZE": "100", "TWILIO_BASE_URL": "x"}
    for settings in (Settings.from_env({}), Settings.from_env(env)):
        for field in dataclasses.fields(settings):
            value = getattr(settings, field.name)
            assert isinstance(value, kinds[str(field.type)]), (field.name, value)
            # A bool is an int: only a field declared bool may hold one.
            assert not isinstance(value, bool) or str(field.type) == "bool", field.name


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
        ("DELIVERY_REPORTS", "yes", "DELIVERY_REPORTS must be 'on' or 'off', got 'yes'"),
    ],
)
def test_a_malformed_setting_is_refused_naming_its_variable(
    name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    assert str(caught.value).startswith(message)


def test_every_malformed_setting_is_listed_at_once_one_line_each_naming_its_variable() -> None:
    env = {
        "RATE_HEADROOM": "1%",
        "CPS": "ten",
        "API_AUTH": "token",
        "WINDOW_SECONDS": "0",
        "MAX_ATTEMPTS": "0",
        "SENDER_BATCH_SIZE": "20000",
        "DEFAULT_REGION": "USA",
    }
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert str(caught.value).splitlines() == [
        "CPS must be an integer, got 'ten'",
        "RATE_HEADROOM must be a number, got '1%'",
        "API_AUTH must be 'api_key' or 'iam', got 'token'",
        "WINDOW_SECONDS must be 1..900 (SQS's delay ceiling), got 0",
        "MAX_ATTEMPTS must be at least 1, got 0",
        "SENDER_BATCH_SIZE must be 1..10000, got 20000",
        "DEFAULT_REGION must be a region code such as US or GB (ISO 3166-1), got 'USA'",
    ]
    assert caught.value.problems == tuple(str(caught.value).splitlines())


def test_a_sender_trigger_out_of_range_and_a_relation_are_not_both_reported() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"SENDER_BATCH_SIZE": "20", "SENDER_BATCHING_WINDOW_SECONDS": "0"})
    assert str(caught.value) == "a SENDER_BATCH_SIZE above 10 needs SENDER_BATCHING_WINDOW_SECONDS"
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"SENDER_BATCH_SIZE": "0", "SENDER_BATCHING_WINDOW_SECONDS": "11"})
    assert [line.split()[0] for line in str(caught.value).splitlines()] == [
        "SENDER_BATCH_SIZE",
        "SENDER_BATCHING_WINDOW_SECONDS",
    ]


def test_national_numbers_are_read_in_the_default_region_when_one_is_set() -> None:
    assert Settings.from_env({}).default_region is None
    assert Settings.from_env({"DEFAULT_REGION": ""}).default_region is None
    assert Settings.from_env({"DEFAULT_REGION": " us "}).default_region == "US"
    assert Settings.from_env({"DEFAULT_REGION": "GB"}).default_region == "GB"
    with pytest.raises(ConfigError, match=r"^DEFAULT_REGION must be a region code"):
        Settings.from_env({"DEFAULT_REGION": "XX"})


def test_inbound_url_defaults_to_the_status_callback_url_of_the_same_api() -> None:
    status = {"STATUS_CALLBACK_URL": "https://x.example/api/twilio/status"}

    assert inbound_url(status) == "https://x.example/api/twilio/inbound"
    assert inbound_url({**status, "INBOUND_WEBHOOK_URL": "https://y/in"}) == "https://y/in"
    assert inbound_url({"STATUS_CALLBACK_URL": "https://x.example/other"}) is None
    assert inbound_url({}) is None


def test_the_api_url_parameter_is_read_only_where_the_deploy_names_it() -> None:
    assert Settings.from_env({}).api_url_parameter is None
    assert Settings.from_env({"API_URL_PARAMETER": ""}).api_url_parameter is None
    named = Settings.from_env({"API_URL_PARAMETER": "/callqueue/dev/api-url"})
    assert named.api_url_parameter == "/callqueue/dev/api-url"
    # A hand-set URL is kept beside it: the hand-set one wins where both are (WebhookUrls).
    both = Settings.from_env(
        {"API_URL_PARAMETER": "/p", "STATUS_CALLBACK_URL": "https://x.example/api/twilio/status"}
    )
    assert (both.status_callback_url, both.inbound_webhook_url) == (
        "https://x.example/api/twilio/status",
        "https://x.example/api/twilio/inbound",
    )
